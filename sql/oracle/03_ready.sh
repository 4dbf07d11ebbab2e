#!/usr/bin/env bash
# Oracle container, first start, last script: the user and tables exist. compose's healthcheck waits
# for this marker (in the data volume), so the pipeline and the API never connect before they do.
touch /opt/oracle/oradata/nextwatch-schema.ready
