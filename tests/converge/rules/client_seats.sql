-- rules_run.py --seats: client.sql goes on with these (seats.sql, without
-- --seat-cascade's foreign key: a device holds a seat without its project).
CREATE TABLE seats(id TEXT PRIMARY KEY, project TEXT NOT NULL, user_id TEXT NOT NULL);
CREATE TABLE notes(id TEXT PRIMARY KEY, project TEXT NOT NULL, body TEXT);
