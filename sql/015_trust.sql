-- What definer code may trust (docs/security.md). Detectors run with the rights of monitor's owner,
-- both from pg_cron (as the installer) and from monitor.run_detector called by monitor_operator. So
-- any code they run, a custom detector function, a function or view behind a source view, must be
-- code that only trusted roles can change: monitor's owner, a superuser, or the database's owner
-- when pg_database_owner owns it on that owner's behalf.

CREATE OR REPLACE FUNCTION monitor.trusted_role(p_role oid) RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, monitor, pg_temp AS $$
    WITH r AS (
        SELECT CASE WHEN p_role = 'pg_database_owner'::regrole
                    THEN (SELECT d.datdba FROM pg_database d WHERE d.datname = current_database())
                    ELSE p_role END AS oid
    )
    SELECT coalesce((SELECT a.rolsuper FROM pg_roles a WHERE a.oid = r.oid), false)
        OR r.oid = (SELECT n.nspowner FROM pg_namespace n WHERE n.nspname = 'monitor')
      FROM r
$$;

-- Why a schema is not safe to resolve names in (NULL when it is): a role that is not trusted owns it,
-- or may create objects in it, and so could plant a function or operator that code there would use.
CREATE OR REPLACE FUNCTION monitor.schema_problem(p_schema text) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, monitor, pg_temp AS $$
    SELECT CASE
        WHEN n.oid IS NULL THEN format('schema %s does not exist (whoever creates it would own it)', p_schema)
        WHEN NOT monitor.trusted_role(n.nspowner) THEN format('schema %s is owned by %s', n.nspname,
                                                             n.nspowner::regrole)
        ELSE (SELECT format('role %s may create objects in schema %s',
                            CASE a.grantee WHEN 0 THEN 'PUBLIC' ELSE a.grantee::regrole::text END, n.nspname)
                FROM aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) a
               WHERE a.privilege_type = 'CREATE' AND (a.grantee = 0 OR NOT monitor.trusted_role(a.grantee))
               LIMIT 1)
    END
    FROM (SELECT p_schema AS name) s LEFT JOIN pg_namespace n ON n.nspname = s.name
$$;

-- What a run trusts of a detector function: its identity, owner, rights and definition. A run
-- compares it with the digest taken at registration and refuses a function that changed since.
CREATE OR REPLACE FUNCTION monitor.function_digest(p_fn regprocedure) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, monitor, pg_temp AS $$
    SELECT md5(concat_ws(E'\x1f', p.oid, p.proowner, p.prosecdef, p.provolatile, p.prolang, p.prokind,
                         p.proconfig::text, p.prosrc, p.probin, p.prorettype, p.proretset))
      FROM pg_proc p WHERE p.oid = p_fn
$$;

-- Why a detector function may not run with monitor's rights (NULL when it may): it must return
-- SETOF monitor.finding, be owned by a trusted role, live in a safe schema and pin a search_path of
-- safe schemas with pg_temp last, so that no name in its body can be redirected.
CREATE OR REPLACE FUNCTION monitor.detector_function_problem(p_fn regprocedure) RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, monitor, pg_temp AS $$
DECLARE
    p record;
    path text;
    entry text;
    problem text;
BEGIN
    SELECT pr.proretset AND pr.prorettype = 'monitor.finding'::regtype AS returns_findings,
           pr.proowner, n.nspname,
           (SELECT substr(c, length('search_path=') + 1) FROM unnest(pr.proconfig) c
             WHERE c LIKE 'search_path=%' LIMIT 1) AS search_path
      INTO p
      FROM pg_proc pr JOIN pg_namespace n ON n.oid = pr.pronamespace
     WHERE pr.oid = p_fn;
    IF NOT FOUND THEN
        RETURN format('function %s does not exist', p_fn);
    ELSIF NOT p.returns_findings THEN
        RETURN format('function %s must return SETOF monitor.finding', p_fn);
    ELSIF NOT monitor.trusted_role(p.proowner) THEN
        RETURN format('function %s is owned by %s: a detector function runs with monitor''s rights, so it must be '
                      'owned by %s (the owner of schema monitor) or by a superuser', p_fn, p.proowner::regrole,
                      (SELECT nspowner::regrole FROM pg_namespace WHERE nspname = 'monitor'));
    END IF;
    problem := monitor.schema_problem(p.nspname);
    IF problem IS NOT NULL THEN
        RETURN format('function %s cannot be trusted: %s', p_fn, problem);
    END IF;
    path := p.search_path;
    IF path IS NULL OR path !~ '(^|,)\s*"?pg_temp"?\s*$' THEN
        RETURN format('function %s must pin its search_path with pg_temp last '
                      '(ALTER FUNCTION %s SET search_path = pg_catalog, monitor, pg_temp)', p_fn, p_fn);
    END IF;
    FOREACH entry IN ARRAY string_to_array(path, ',') LOOP
        entry := btrim(btrim(entry), '"');
        CONTINUE WHEN entry IN ('pg_temp', 'pg_catalog');
        problem := monitor.schema_problem(entry);
        IF problem IS NOT NULL THEN
            RETURN format('function %s cannot be trusted: its search_path names schema %s, and %s', p_fn, entry,
                          problem);
        END IF;
    END LOOP;
    RETURN NULL;
END
$$;

-- Why the source views may not be read with monitor's rights (NULL when they may): behind them,
-- through any depth of views, every view, materialized view, foreign table and function must be
-- owned by a trusted role (its owner could otherwise replace it, and a function in a view runs as
-- whoever reads the view), and a table owned by another role must not have row-level security
-- (its policies run as the reader).
CREATE OR REPLACE FUNCTION monitor.sources_problem() RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, monitor, pg_temp AS $$
    WITH RECURSIVE behind (classid, objid) AS (
        SELECT 'pg_class'::regclass::oid, c.oid FROM pg_class c
         WHERE c.relnamespace = 'monitor'::regnamespace
           AND c.relname IN ('src_accounts', 'src_transactions', 'src_scans')
        UNION
        SELECT d.refclassid, d.refobjid
          FROM behind b
          JOIN pg_rewrite rw ON b.classid = 'pg_class'::regclass AND rw.ev_class = b.objid
          JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = rw.oid
         WHERE d.refclassid IN ('pg_class'::regclass, 'pg_proc'::regclass, 'pg_operator'::regclass)
           AND NOT (d.refclassid = 'pg_class'::regclass AND d.refobjid = b.objid)
    )
    SELECT format('%s %s is owned by %s, and detectors read it with monitor''s rights: it must be owned by %s '
                  '(the owner of schema monitor) or a superuser', what, name, owner,
                  (SELECT nspowner::regrole FROM pg_namespace WHERE nspname = 'monitor'))
      FROM (
        SELECT CASE c.relkind WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view' WHEN 'f' THEN 'foreign table'
                              ELSE 'table with row-level security' END AS what,
               c.oid::regclass::text AS name, c.relowner::regrole::text AS owner, c.relowner AS owner_oid
          FROM behind b JOIN pg_class c ON b.classid = 'pg_class'::regclass AND c.oid = b.objid
         WHERE c.relkind IN ('v', 'm', 'f') OR (c.relkind IN ('r', 'p') AND c.relrowsecurity)
        UNION ALL
        SELECT 'function', p.oid::regprocedure::text, p.proowner::regrole::text, p.proowner
          FROM behind b JOIN pg_proc p ON b.classid = 'pg_proc'::regclass AND p.oid = b.objid
        UNION ALL
        SELECT 'function', p.oid::regprocedure::text, p.proowner::regrole::text, p.proowner
          FROM behind b JOIN pg_operator o ON b.classid = 'pg_operator'::regclass AND o.oid = b.objid
          JOIN pg_proc p ON p.oid = o.oprcode
      ) x
     WHERE x.owner_oid <> 10  -- the bootstrap superuser, owner of PostgreSQL's own objects
       AND NOT monitor.trusted_role(x.owner_oid)
     LIMIT 1
$$;
