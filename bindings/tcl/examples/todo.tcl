# A to-do list that syncs through syncd.
#
#   server/syncd --listen 127.0.0.1:8080 --schema bindings/todos.sql --db server.db
#   tclsh todo.tcl a.db http://127.0.0.1:8080 add "buy milk"
#   tclsh todo.tcl b.db http://127.0.0.1:8080 list      ;# - [ ] 1a2b3c4d buy milk
#   tclsh todo.tcl b.db http://127.0.0.1:8080 done 1a2b3c4d
#   tclsh todo.tcl a.db http://127.0.0.1:8080 watch     ;# live, until Ctrl-C
lappend auto_path [file dirname [file dirname [file normalize [info script]]]]
package require sqlite3
package require sqlite_sync

lassign $argv file url cmd
set args [lrange $argv 3 end]
if {$cmd eq ""} { set cmd list }
sqlite3 db $file
sqlite_sync::load_extension db
db eval {CREATE TABLE IF NOT EXISTS todos(id TEXT PRIMARY KEY, title TEXT NOT NULL,
         done INTEGER NOT NULL DEFAULT 0, data BLOB)}
sqlite_sync::init db $url
sqlite_sync::track db todos

proc show {args} {
    db eval {SELECT id, title, done FROM todos ORDER BY title} {
        puts "- \[[expr {$done ? "x" : " "}]\] [string range $id 0 7] $title"
    }
    flush stdout
}

switch -- $cmd {
    add {
        set title [join $args " "]
        db eval {INSERT INTO todos(id, title) VALUES (lower(hex(randomblob(16))), $title)}
    }
    done {
        set prefix [lindex $args 0]
        db eval {UPDATE todos SET done = 1 WHERE id LIKE $prefix || '%'}
    }
    watch {
        sqlite_sync::start db
        sqlite_sync::on_change db show
        show
        vwait forever
    }
}
# send what is queued, fetch what is new; offline, it all waits in the outbox
if {[catch {sqlite_sync::push db; sqlite_sync::pull db} err]} {
    puts "offline ($err); [sqlite_sync::pending db] change(s) queued"
}
show
db close
