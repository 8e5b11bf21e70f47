#!/bin/sh
# The base image's entrypoint: on first start, make a cluster in $PGDATA (initdb, the superuser's
# password, pg_hba for TCP connections by POSTGRES_HOST_AUTH_METHOD), run the *.sql and *.sh files of
# /docker-entrypoint-initdb.d against it on the unix socket only, then run the server as postgres.
set -eu

if [ "${1:-}" = "postgres" ] || [ "${1#-}" != "${1:-}" ]; then
    [ "${1:-}" = "postgres" ] || set -- postgres "$@"
    if [ "$(id -u)" = 0 ]; then
        mkdir -p "$PGDATA" /var/run/postgresql
        chown postgres:postgres "$PGDATA" /var/run/postgresql
        chmod 700 "$PGDATA"
        exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
    fi
    if [ ! -s "$PGDATA/PG_VERSION" ]; then
        auth="${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}"
        if [ -z "${POSTGRES_PASSWORD:-}" ] && [ "$auth" != trust ]; then
            echo "docker-entrypoint: set POSTGRES_PASSWORD, or POSTGRES_HOST_AUTH_METHOD=trust" >&2
            exit 1
        fi
        pwfile=$(mktemp)
        printf '%s\n' "${POSTGRES_PASSWORD:-postgres}" > "$pwfile"
        initdb --username="${POSTGRES_USER:-postgres}" --pwfile="$pwfile" --auth-local=trust \
               --auth-host="$auth" ${POSTGRES_INITDB_ARGS:-} -D "$PGDATA"
        rm -f "$pwfile"
        printf 'host all all all %s\n' "$auth" >> "$PGDATA/pg_hba.conf"
        pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start
        if [ -n "${POSTGRES_DB:-}" ] && [ "$POSTGRES_DB" != postgres ]; then
            psql -v ON_ERROR_STOP=1 --username "${POSTGRES_USER:-postgres}" --dbname postgres \
                 -c "CREATE DATABASE \"$POSTGRES_DB\""
        fi
        for f in /docker-entrypoint-initdb.d/*; do
            case "$f" in
                *.sql) echo "docker-entrypoint: running $f"
                       psql -v ON_ERROR_STOP=1 --username "${POSTGRES_USER:-postgres}" \
                            --dbname "${POSTGRES_DB:-postgres}" -f "$f" ;;
                *.sh)  echo "docker-entrypoint: running $f"; . "$f" ;;
            esac
        done
        pg_ctl -D "$PGDATA" -m fast -w stop
        echo "docker-entrypoint: PostgreSQL init process complete; ready for start up."
    fi
fi
exec "$@"
