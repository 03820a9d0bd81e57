-- rules_run.py --seats --pg: server_pg.sql goes on with this,
-- seats.sql in PostgreSQL's dialect, with the same judgments.
CREATE TABLE seats(id TEXT PRIMARY KEY,
                   project TEXT NOT NULL
                     /*cascade*/ REFERENCES projects(id) ON DELETE CASCADE /*end*/,
                   user_id TEXT NOT NULL);
CREATE TABLE notes(id TEXT PRIMARY KEY, project TEXT NOT NULL, body TEXT);

INSERT INTO seats VALUES ('s1', 'pa1', 'bob'), ('s2', 'pb1', 'alice'), ('s3', 'pb1', 'bob');
INSERT INTO notes VALUES ('n1', 'pa1', 'seeded'), ('n2', 'pb1', 'seeded');

-- with --seat-cascade a seat deleted by its project's delete (ON DELETE
-- CASCADE) finds its project gone: that delete is the project's, judged by
-- projects' audit
CREATE FUNCTION audit_seats() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO audit(sub, tbl, op, old, new, ok_old, ok_new) VALUES (audit_sub(), 'seats',
    lower(TG_OP),
    CASE WHEN TG_OP <> 'INSERT' THEN json_build_array(OLD.id, OLD.project, OLD.user_id)::text END,
    CASE WHEN TG_OP <> 'DELETE' THEN json_build_array(NEW.id, NEW.project, NEW.user_id)::text END,
    CASE WHEN TG_OP <> 'INSERT' THEN EXISTS(SELECT 1 FROM projects p
                                             WHERE p.id = OLD.project AND p.owner = audit_sub())
                                      /*cascade*/ OR (TG_OP = 'DELETE' AND NOT EXISTS(
                                            SELECT 1 FROM projects p WHERE p.id = OLD.project))
                                      /*end*/
    END,
    CASE WHEN TG_OP <> 'DELETE' THEN EXISTS(SELECT 1 FROM projects p
                                             WHERE p.id = NEW.project AND p.owner = audit_sub())
    END);
  RETURN NULL;
END $$;
CREATE TRIGGER audit_seats AFTER INSERT OR UPDATE OR DELETE ON seats
  FOR EACH ROW EXECUTE FUNCTION audit_seats();

CREATE FUNCTION audit_notes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO audit(sub, tbl, op, old, new, ok_old, ok_new) VALUES (audit_sub(), 'notes',
    lower(TG_OP),
    CASE WHEN TG_OP <> 'INSERT' THEN json_build_array(OLD.id, OLD.project)::text END,
    CASE WHEN TG_OP <> 'DELETE' THEN json_build_array(NEW.id, NEW.project)::text END,
    CASE WHEN TG_OP <> 'INSERT' THEN EXISTS(SELECT 1 FROM seats s
                                             WHERE s.project = OLD.project
                                               AND s.user_id = audit_sub())
    END,
    CASE WHEN TG_OP <> 'DELETE' THEN EXISTS(SELECT 1 FROM seats s
                                             WHERE s.project = NEW.project
                                               AND s.user_id = audit_sub())
    END);
  RETURN NULL;
END $$;
CREATE TRIGGER audit_notes AFTER INSERT OR UPDATE OR DELETE ON notes
  FOR EACH ROW EXECUTE FUNCTION audit_notes();

-- tasks: a member of the project or a seat in it (rules_seats.json)
CREATE OR REPLACE FUNCTION audit_tasks() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO audit(sub, tbl, op, old, new, ok_old, ok_new) VALUES (audit_sub(), 'tasks',
    lower(TG_OP),
    CASE WHEN TG_OP <> 'INSERT' THEN json_build_array(OLD.id, OLD.project)::text END,
    CASE WHEN TG_OP <> 'DELETE' THEN json_build_array(NEW.id, NEW.project)::text END,
    CASE WHEN TG_OP <> 'INSERT' THEN EXISTS(SELECT 1 FROM members m
                                             WHERE m.project = OLD.project
                                               AND m.user_id = audit_sub())
                                      OR EXISTS(SELECT 1 FROM seats s
                                                WHERE s.project = OLD.project
                                                  AND s.user_id = audit_sub())
    END,
    CASE WHEN TG_OP <> 'DELETE' THEN EXISTS(SELECT 1 FROM members m
                                             WHERE m.project = NEW.project
                                               AND m.user_id = audit_sub())
                                      OR EXISTS(SELECT 1 FROM seats s
                                                WHERE s.project = NEW.project
                                                  AND s.user_id = audit_sub())
    END);
  RETURN NULL;
END $$;
