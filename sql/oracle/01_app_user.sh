#!/usr/bin/env bash
# Oracle container, first start (gvenzl/oracle-free runs /container-entrypoint-initdb.d in name order,
# as SYS): the application user NEXTWATCH in the FREEPDB1 pluggable database, allowed only to log in
# and to own its tables and indexes (02_schema.sql creates them; the pipeline and the API use them).
# The password comes from the environment (compose passes ORACLE_APP_PASSWORD from .env); it goes
# into the database URL too, so keep it to letters, digits and underscores.
sqlplus -s / as sysdba <<SQL
WHENEVER SQLERROR EXIT SQL.SQLCODE
ALTER SESSION SET CONTAINER = FREEPDB1;
CREATE USER nextwatch IDENTIFIED BY "${ORACLE_APP_PASSWORD:?set ORACLE_APP_PASSWORD}" QUOTA UNLIMITED ON USERS;
GRANT CREATE SESSION, CREATE TABLE TO nextwatch;
EXIT
SQL
