-- The multi-user convergence test's server schema (tests/converge/rules_run.py,
-- rules.json). todos.rev is server-owned: NOT NULL with a default here,
-- nullable on the clients, bumped by a trigger on every update.
CREATE TABLE todos(id TEXT PRIMARY KEY, owner TEXT NOT NULL, title TEXT NOT NULL DEFAULT '',
                   done INTEGER NOT NULL DEFAULT 0, rev INTEGER NOT NULL DEFAULT 0);
CREATE TABLE projects(id TEXT PRIMARY KEY, owner TEXT NOT NULL, name TEXT);
CREATE TABLE members(project TEXT NOT NULL, user_id TEXT NOT NULL,
                     PRIMARY KEY(project, user_id)) WITHOUT ROWID;
CREATE TABLE tasks(id TEXT PRIMARY KEY, project TEXT NOT NULL, title TEXT,
                   done INTEGER NOT NULL DEFAULT 0);

-- What every device's initial sync starts from.
INSERT INTO todos(id, owner, title) VALUES ('a1', 'alice', 'seeded'), ('b1', 'bob', 'seeded');
INSERT INTO projects VALUES ('pa1', 'alice', 'shared'), ('pb1', 'bob', 'bob''s');
INSERT INTO members VALUES ('pa1', 'alice'), ('pa1', 'bob'), ('pb1', 'bob');
INSERT INTO tasks(id, project, title) VALUES ('t1', 'pa1', 'seeded'), ('t2', 'pb1', 'seeded');

CREATE TRIGGER todos_rev AFTER UPDATE ON todos WHEN NEW.rev IS OLD.rev BEGIN
  UPDATE todos SET rev = OLD.rev + 1 WHERE id = NEW.id;
END;

-- The audit: every change a push makes, with the user and whether the row
-- before and after it passes the write rule, judged here by SQL of the
-- test's own (not syncd's rules engine). No rule names audit, so it is
-- never synced. The test fails on any row with sub NULL or a 0.
CREATE TABLE audit(seq INTEGER PRIMARY KEY, sub TEXT, tbl TEXT NOT NULL, op TEXT NOT NULL,
                   old TEXT, new TEXT, ok_old INTEGER, ok_new INTEGER);
CREATE TRIGGER audit_todos_i AFTER INSERT ON todos BEGIN
  INSERT INTO audit(sub, tbl, op, new, ok_new) VALUES (syncd_sub(), 'todos', 'insert',
    json_array(NEW.id, NEW.owner), NEW.owner = syncd_sub()
      OR coalesce(json_extract(syncd_claims(), '$.role') = 'admin', 0));
END;
CREATE TRIGGER audit_todos_u AFTER UPDATE ON todos BEGIN
  INSERT INTO audit(sub, tbl, op, old, new, ok_old, ok_new) VALUES (syncd_sub(), 'todos', 'update',
    json_array(OLD.id, OLD.owner), json_array(NEW.id, NEW.owner),
    OLD.owner = syncd_sub() OR coalesce(json_extract(syncd_claims(), '$.role') = 'admin', 0),
    NEW.owner = syncd_sub() OR coalesce(json_extract(syncd_claims(), '$.role') = 'admin', 0));
END;
CREATE TRIGGER audit_todos_d AFTER DELETE ON todos BEGIN
  INSERT INTO audit(sub, tbl, op, old, ok_old) VALUES (syncd_sub(), 'todos', 'delete',
    json_array(OLD.id, OLD.owner), OLD.owner = syncd_sub()
      OR coalesce(json_extract(syncd_claims(), '$.role') = 'admin', 0));
END;
CREATE TRIGGER audit_projects_i AFTER INSERT ON projects BEGIN
  INSERT INTO audit(sub, tbl, op, new, ok_new) VALUES (syncd_sub(), 'projects', 'insert',
    json_array(NEW.id, NEW.owner), NEW.owner = syncd_sub());
END;
CREATE TRIGGER audit_projects_u AFTER UPDATE ON projects BEGIN
  INSERT INTO audit(sub, tbl, op, old, new, ok_old, ok_new) VALUES (syncd_sub(), 'projects',
    'update', json_array(OLD.id, OLD.owner), json_array(NEW.id, NEW.owner),
    OLD.owner = syncd_sub(), NEW.owner = syncd_sub());
END;
CREATE TRIGGER audit_projects_d AFTER DELETE ON projects BEGIN
  INSERT INTO audit(sub, tbl, op, old, ok_old) VALUES (syncd_sub(), 'projects', 'delete',
    json_array(OLD.id, OLD.owner), OLD.owner = syncd_sub());
END;
CREATE TRIGGER audit_members_i AFTER INSERT ON members BEGIN
  INSERT INTO audit(sub, tbl, op, new, ok_new) VALUES (syncd_sub(), 'members', 'insert',
    json_array(NEW.project, NEW.user_id),
    EXISTS(SELECT 1 FROM projects p WHERE p.id = NEW.project AND p.owner = syncd_sub()));
END;
CREATE TRIGGER audit_members_u AFTER UPDATE ON members BEGIN
  INSERT INTO audit(sub, tbl, op, old, new, ok_old, ok_new) VALUES (syncd_sub(), 'members',
    'update', json_array(OLD.project, OLD.user_id), json_array(NEW.project, NEW.user_id),
    EXISTS(SELECT 1 FROM projects p WHERE p.id = OLD.project AND p.owner = syncd_sub()),
    EXISTS(SELECT 1 FROM projects p WHERE p.id = NEW.project AND p.owner = syncd_sub()));
END;
CREATE TRIGGER audit_members_d AFTER DELETE ON members BEGIN
  INSERT INTO audit(sub, tbl, op, old, ok_old) VALUES (syncd_sub(), 'members', 'delete',
    json_array(OLD.project, OLD.user_id),
    EXISTS(SELECT 1 FROM projects p WHERE p.id = OLD.project AND p.owner = syncd_sub()));
END;
CREATE TRIGGER audit_tasks_i AFTER INSERT ON tasks BEGIN
  INSERT INTO audit(sub, tbl, op, new, ok_new) VALUES (syncd_sub(), 'tasks', 'insert',
    json_array(NEW.id, NEW.project),
    EXISTS(SELECT 1 FROM members m WHERE m.project = NEW.project AND m.user_id = syncd_sub()));
END;
CREATE TRIGGER audit_tasks_u AFTER UPDATE ON tasks BEGIN
  INSERT INTO audit(sub, tbl, op, old, new, ok_old, ok_new) VALUES (syncd_sub(), 'tasks', 'update',
    json_array(OLD.id, OLD.project), json_array(NEW.id, NEW.project),
    EXISTS(SELECT 1 FROM members m WHERE m.project = OLD.project AND m.user_id = syncd_sub()),
    EXISTS(SELECT 1 FROM members m WHERE m.project = NEW.project AND m.user_id = syncd_sub()));
END;
CREATE TRIGGER audit_tasks_d AFTER DELETE ON tasks BEGIN
  INSERT INTO audit(sub, tbl, op, old, ok_old) VALUES (syncd_sub(), 'tasks', 'delete',
    json_array(OLD.id, OLD.project),
    EXISTS(SELECT 1 FROM members m WHERE m.project = OLD.project AND m.user_id = syncd_sub()));
END;
