-- rules_run.py --seats: server.sql goes on with this
-- (rules_seats.json). seats is a membership keyed by an id of its own, so
-- one key can name one project and user, then another: moved by an update
-- of project or user_id, deleted and made again with other values, or
-- (--seat-cascade) deleted by the cascade of its project's delete and made
-- again. notes are read and written through seats only; tasks and
-- projects through members or seats.
CREATE TABLE seats(id TEXT PRIMARY KEY,
                   project TEXT NOT NULL
                     /*cascade*/ REFERENCES projects(id) ON DELETE CASCADE /*end*/,
                   user_id TEXT NOT NULL);
CREATE TABLE notes(id TEXT PRIMARY KEY, project TEXT NOT NULL, body TEXT);

INSERT INTO seats VALUES ('s1', 'pa1', 'bob'), ('s2', 'pb1', 'alice'), ('s3', 'pb1', 'bob');
INSERT INTO notes VALUES ('n1', 'pa1', 'seeded'), ('n2', 'pb1', 'seeded');

-- A seat's change is judged on the projects as they stand; with
-- --seat-cascade a seat deleted by its project's delete (ON DELETE CASCADE)
-- finds its project gone: that delete is the project's, judged by
-- projects' audit. Without it, rules_run.py leaves out what lies between
-- /*cascade*/ and /*end*/.
CREATE TRIGGER audit_seats_i AFTER INSERT ON seats BEGIN
  INSERT INTO audit(sub, tbl, op, new, ok_new) VALUES (syncd_sub(), 'seats', 'insert',
    json_array(NEW.id, NEW.project, NEW.user_id),
    EXISTS(SELECT 1 FROM projects p WHERE p.id = NEW.project AND p.owner = syncd_sub()));
END;
CREATE TRIGGER audit_seats_u AFTER UPDATE ON seats BEGIN
  INSERT INTO audit(sub, tbl, op, old, new, ok_old, ok_new) VALUES (syncd_sub(), 'seats',
    'update', json_array(OLD.id, OLD.project, OLD.user_id),
    json_array(NEW.id, NEW.project, NEW.user_id),
    EXISTS(SELECT 1 FROM projects p WHERE p.id = OLD.project AND p.owner = syncd_sub()),
    EXISTS(SELECT 1 FROM projects p WHERE p.id = NEW.project AND p.owner = syncd_sub()));
END;
CREATE TRIGGER audit_seats_d AFTER DELETE ON seats BEGIN
  INSERT INTO audit(sub, tbl, op, old, ok_old) VALUES (syncd_sub(), 'seats', 'delete',
    json_array(OLD.id, OLD.project, OLD.user_id),
    EXISTS(SELECT 1 FROM projects p WHERE p.id = OLD.project AND p.owner = syncd_sub())
      /*cascade*/ OR NOT EXISTS(SELECT 1 FROM projects p WHERE p.id = OLD.project) /*end*/);
END;
CREATE TRIGGER audit_notes_i AFTER INSERT ON notes BEGIN
  INSERT INTO audit(sub, tbl, op, new, ok_new) VALUES (syncd_sub(), 'notes', 'insert',
    json_array(NEW.id, NEW.project),
    EXISTS(SELECT 1 FROM seats s WHERE s.project = NEW.project AND s.user_id = syncd_sub()));
END;
CREATE TRIGGER audit_notes_u AFTER UPDATE ON notes BEGIN
  INSERT INTO audit(sub, tbl, op, old, new, ok_old, ok_new) VALUES (syncd_sub(), 'notes', 'update',
    json_array(OLD.id, OLD.project), json_array(NEW.id, NEW.project),
    EXISTS(SELECT 1 FROM seats s WHERE s.project = OLD.project AND s.user_id = syncd_sub()),
    EXISTS(SELECT 1 FROM seats s WHERE s.project = NEW.project AND s.user_id = syncd_sub()));
END;
CREATE TRIGGER audit_notes_d AFTER DELETE ON notes BEGIN
  INSERT INTO audit(sub, tbl, op, old, ok_old) VALUES (syncd_sub(), 'notes', 'delete',
    json_array(OLD.id, OLD.project),
    EXISTS(SELECT 1 FROM seats s WHERE s.project = OLD.project AND s.user_id = syncd_sub()));
END;

-- tasks: a member of the project or a seat in it (rules_seats.json)
DROP TRIGGER audit_tasks_i;
DROP TRIGGER audit_tasks_u;
DROP TRIGGER audit_tasks_d;
CREATE TRIGGER audit_tasks_i AFTER INSERT ON tasks BEGIN
  INSERT INTO audit(sub, tbl, op, new, ok_new) VALUES (syncd_sub(), 'tasks', 'insert',
    json_array(NEW.id, NEW.project),
    EXISTS(SELECT 1 FROM members m WHERE m.project = NEW.project AND m.user_id = syncd_sub())
      OR EXISTS(SELECT 1 FROM seats s WHERE s.project = NEW.project
                AND s.user_id = syncd_sub()));
END;
CREATE TRIGGER audit_tasks_u AFTER UPDATE ON tasks BEGIN
  INSERT INTO audit(sub, tbl, op, old, new, ok_old, ok_new) VALUES (syncd_sub(), 'tasks', 'update',
    json_array(OLD.id, OLD.project), json_array(NEW.id, NEW.project),
    EXISTS(SELECT 1 FROM members m WHERE m.project = OLD.project AND m.user_id = syncd_sub())
      OR EXISTS(SELECT 1 FROM seats s WHERE s.project = OLD.project
                AND s.user_id = syncd_sub()),
    EXISTS(SELECT 1 FROM members m WHERE m.project = NEW.project AND m.user_id = syncd_sub())
      OR EXISTS(SELECT 1 FROM seats s WHERE s.project = NEW.project
                AND s.user_id = syncd_sub()));
END;
CREATE TRIGGER audit_tasks_d AFTER DELETE ON tasks BEGIN
  INSERT INTO audit(sub, tbl, op, old, ok_old) VALUES (syncd_sub(), 'tasks', 'delete',
    json_array(OLD.id, OLD.project),
    EXISTS(SELECT 1 FROM members m WHERE m.project = OLD.project AND m.user_id = syncd_sub())
      OR EXISTS(SELECT 1 FROM seats s WHERE s.project = OLD.project
                AND s.user_id = syncd_sub()));
END;
