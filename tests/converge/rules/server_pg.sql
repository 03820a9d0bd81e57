-- The multi-user convergence test's server schema on PostgreSQL
-- (tests/converge/rules_run.py --pg): server.sql's tables, seed rows, rev
-- trigger and audit in PostgreSQL's dialect, with the same judgments. The
-- user is the push's setting syncd.sub and its token's payload
-- syncd.claims (docs/RULES.md, "The user in defaults and triggers"): NULL
-- when never set in the session, '' once a transaction that set it ended.
CREATE TABLE todos(id TEXT PRIMARY KEY, owner TEXT NOT NULL, title TEXT NOT NULL DEFAULT '',
                   done BIGINT NOT NULL DEFAULT 0, rev BIGINT NOT NULL DEFAULT 0);
CREATE TABLE projects(id TEXT PRIMARY KEY, owner TEXT NOT NULL, name TEXT);
CREATE TABLE members(project TEXT NOT NULL, user_id TEXT NOT NULL,
                     PRIMARY KEY(project, user_id));
CREATE TABLE tasks(id TEXT PRIMARY KEY, project TEXT NOT NULL, title TEXT,
                   done BIGINT NOT NULL DEFAULT 0);

-- What every device's initial sync starts from.
INSERT INTO todos(id, owner, title) VALUES ('a1', 'alice', 'seeded'), ('b1', 'bob', 'seeded');
INSERT INTO projects VALUES ('pa1', 'alice', 'shared'), ('pb1', 'bob', 'bob''s');
INSERT INTO members VALUES ('pa1', 'alice'), ('pa1', 'bob'), ('pb1', 'bob');
INSERT INTO tasks(id, project, title) VALUES ('t1', 'pa1', 'seeded'), ('t2', 'pb1', 'seeded');

-- server.sql's AFTER UPDATE trigger updates the row again when rev was
-- left as it was; setting it before the update is the same.
CREATE FUNCTION todos_rev() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.rev IS NOT DISTINCT FROM OLD.rev THEN
    NEW.rev := OLD.rev + 1;
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER todos_rev BEFORE UPDATE ON todos FOR EACH ROW EXECUTE FUNCTION todos_rev();

-- The audit: every change a push makes, with the user and whether the row
-- before and after it passes the write rule, judged here by SQL of the
-- test's own (not syncd's rules engine). No rule names audit, so it is
-- never synced. The test fails on any row with sub NULL or a false.
CREATE TABLE audit(seq BIGSERIAL PRIMARY KEY, sub TEXT, tbl TEXT NOT NULL, op TEXT NOT NULL,
                   old TEXT, new TEXT, ok_old BOOLEAN, ok_new BOOLEAN);

CREATE FUNCTION audit_sub() RETURNS text LANGUAGE sql STABLE AS $$
  SELECT nullif(current_setting('syncd.sub', true), '')
$$;
CREATE FUNCTION audit_admin() RETURNS boolean LANGUAGE sql STABLE AS $$
  SELECT coalesce(nullif(current_setting('syncd.claims', true), '')::jsonb ->> 'role' = 'admin',
                  false)
$$;

-- One function per table: ok(row) is the table's write rule for that row.
CREATE FUNCTION audit_todos() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO audit(sub, tbl, op, old, new, ok_old, ok_new) VALUES (audit_sub(), 'todos',
    lower(TG_OP),
    CASE WHEN TG_OP <> 'INSERT' THEN json_build_array(OLD.id, OLD.owner)::text END,
    CASE WHEN TG_OP <> 'DELETE' THEN json_build_array(NEW.id, NEW.owner)::text END,
    CASE WHEN TG_OP <> 'INSERT' THEN OLD.owner = audit_sub() OR audit_admin() END,
    CASE WHEN TG_OP <> 'DELETE' THEN NEW.owner = audit_sub() OR audit_admin() END);
  RETURN NULL;
END $$;
CREATE TRIGGER audit_todos AFTER INSERT OR UPDATE OR DELETE ON todos
  FOR EACH ROW EXECUTE FUNCTION audit_todos();

CREATE FUNCTION audit_projects() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO audit(sub, tbl, op, old, new, ok_old, ok_new) VALUES (audit_sub(), 'projects',
    lower(TG_OP),
    CASE WHEN TG_OP <> 'INSERT' THEN json_build_array(OLD.id, OLD.owner)::text END,
    CASE WHEN TG_OP <> 'DELETE' THEN json_build_array(NEW.id, NEW.owner)::text END,
    CASE WHEN TG_OP <> 'INSERT' THEN OLD.owner = audit_sub() END,
    CASE WHEN TG_OP <> 'DELETE' THEN NEW.owner = audit_sub() END);
  RETURN NULL;
END $$;
CREATE TRIGGER audit_projects AFTER INSERT OR UPDATE OR DELETE ON projects
  FOR EACH ROW EXECUTE FUNCTION audit_projects();

-- members and tasks are judged on the projects and members as they stand
-- when the change is made, as server.sql's triggers judge them.
CREATE FUNCTION audit_members() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO audit(sub, tbl, op, old, new, ok_old, ok_new) VALUES (audit_sub(), 'members',
    lower(TG_OP),
    CASE WHEN TG_OP <> 'INSERT' THEN json_build_array(OLD.project, OLD.user_id)::text END,
    CASE WHEN TG_OP <> 'DELETE' THEN json_build_array(NEW.project, NEW.user_id)::text END,
    CASE WHEN TG_OP <> 'INSERT' THEN EXISTS(SELECT 1 FROM projects p
                                             WHERE p.id = OLD.project AND p.owner = audit_sub())
    END,
    CASE WHEN TG_OP <> 'DELETE' THEN EXISTS(SELECT 1 FROM projects p
                                             WHERE p.id = NEW.project AND p.owner = audit_sub())
    END);
  RETURN NULL;
END $$;
CREATE TRIGGER audit_members AFTER INSERT OR UPDATE OR DELETE ON members
  FOR EACH ROW EXECUTE FUNCTION audit_members();

CREATE FUNCTION audit_tasks() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO audit(sub, tbl, op, old, new, ok_old, ok_new) VALUES (audit_sub(), 'tasks',
    lower(TG_OP),
    CASE WHEN TG_OP <> 'INSERT' THEN json_build_array(OLD.id, OLD.project)::text END,
    CASE WHEN TG_OP <> 'DELETE' THEN json_build_array(NEW.id, NEW.project)::text END,
    CASE WHEN TG_OP <> 'INSERT' THEN EXISTS(SELECT 1 FROM members m
                                             WHERE m.project = OLD.project
                                               AND m.user_id = audit_sub())
    END,
    CASE WHEN TG_OP <> 'DELETE' THEN EXISTS(SELECT 1 FROM members m
                                             WHERE m.project = NEW.project
                                               AND m.user_id = audit_sub())
    END);
  RETURN NULL;
END $$;
CREATE TRIGGER audit_tasks AFTER INSERT OR UPDATE OR DELETE ON tasks
  FOR EACH ROW EXECUTE FUNCTION audit_tasks();
