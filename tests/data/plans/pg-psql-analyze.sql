SELECT relname, relkind FROM pg_class WHERE relname = 'pg_proc';
