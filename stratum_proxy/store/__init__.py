"""Getting share records into ClickHouse: record, schema, backends, queue, spool, writer."""
