# sqlite_sync: offline-first sync for tclsqlite (package require sqlite3).
#
#   package require sqlite3
#   package require sqlite_sync
#   sqlite3 db todo.db
#   sqlite_sync::load db                    ;# loads the extension
#   sqlite_sync::init db http://127.0.0.1:8080
#   sqlite_sync::track db todos
#   sqlite_sync::start db                   ;# the background worker
#   sqlite_sync::on_change db {apply {tables {puts "changed: $tables"}}}
#
# Each proc runs one SELECT of the extension's SQL functions (README, "API")
# on the connection command given; the extension's errors come out as Tcl
# errors with its message ("sync_track: table "x" has no PRIMARY KEY").
package require sqlite3

namespace eval sqlite_sync {
    variable here [file dirname [file normalize [info script]]]
    variable watch
    array set watch {}
    namespace export load find_extension init track untrack mutate pending \
        pending_rows rejected cursor push_batch ack apply start stop push pull \
        online config wait status on_change cancel_change
}

# Path of the extension: $SQLITE_SYNC_EXTENSION; sync.so next to this file
# (or the path `make install` wrote to installed.tcl); the repository's
# ext/sync.so when this runs from a checkout.
proc sqlite_sync::find_extension {} {
    variable here
    set suffix [info sharedlibextension]
    if {[info exists ::env(SQLITE_SYNC_EXTENSION)] && $::env(SQLITE_SYNC_EXTENSION) ne ""} {
        set p $::env(SQLITE_SYNC_EXTENSION)
        foreach c [list $p $p$suffix] {
            if {[file isfile $c]} { return [file normalize $c] }
        }
        error "SQLITE_SYNC_EXTENSION=$p does not name an existing file"
    }
    set candidates [list [file join $here sync$suffix]]
    if {[file exists [file join $here installed.tcl]]} {
        lappend candidates [source [file join $here installed.tcl]]
    }
    lappend candidates [file join [file dirname [file dirname $here]] ext sync$suffix]
    foreach c $candidates {
        if {[file isfile $c]} { return $c }
    }
    error "sqlite-sync extension not found (run `make` in the repository, or set SQLITE_SYNC_EXTENSION); looked at: [join $candidates {, }]"
}

# Loads the extension into db; extension loading is switched off again after.
# The worker writes on its own connection, so a connection without a busy
# timeout (tclsqlite's default) would meet "database is locked": load gives
# it 5 seconds, as Python's sqlite3 and better-sqlite3 do, unless one is set.
proc sqlite_sync::load {db {path ""}} {
    if {$path eq ""} { set path [find_extension] }
    if {[$db onecolumn {PRAGMA busy_timeout}] == 0} { $db timeout 5000 }
    $db enable_load_extension 1
    set rc [catch {$db eval {SELECT load_extension($path)}} msg opts]
    $db enable_load_extension 0
    return -options $opts $msg
}

proc sqlite_sync::one {db sql} {
    # the caller's variables are bound as parameters
    uplevel 1 [list $db onecolumn $sql]
}

# sync_init: the client id; url "" = bring your own transport; options as JSON text.
proc sqlite_sync::init {db {url ""} {options ""}} {
    if {$url eq ""} { unset url }
    if {$options eq ""} { return [one $db {SELECT sync_init($url)}] }
    return [one $db {SELECT sync_init($url, $options)}]
}
proc sqlite_sync::track {db table} { one $db {SELECT sync_track($table)} }
proc sqlite_sync::untrack {db table} { one $db {SELECT sync_untrack($table)} }
# sync_mutate: row as JSON text; the mutation id, "" when nothing changed.
proc sqlite_sync::mutate {db table op json} { one $db {SELECT sync_mutate($table, $op, $json)} }
proc sqlite_sync::pending {db} { one $db {SELECT sync_pending()} }
proc sqlite_sync::cursor {db} { one $db {SELECT sync_cursor()} }

# The rows of a table as a list of dicts.
proc sqlite_sync::rows {db sql} {
    set out {}
    $db eval $sql r {
        set d {}
        foreach c $r(*) { dict set d $c $r($c) }
        lappend out $d
    }
    return $out
}
proc sqlite_sync::pending_rows {db} { rows $db {SELECT * FROM sync_pending} }
proc sqlite_sync::rejected {db} { rows $db {SELECT * FROM sync_rejected ORDER BY id} }
proc sqlite_sync::status {db} { lindex [rows $db {SELECT * FROM sync_status}] 0 }

# Bring your own transport.
proc sqlite_sync::push_batch {db {limit ""}} {
    if {$limit eq ""} { return [one $db {SELECT sync_push_batch()}] }
    one $db {SELECT sync_push_batch(CAST($limit AS INTEGER))}
}
proc sqlite_sync::ack {db json} { one $db {SELECT sync_ack($json)} }
proc sqlite_sync::apply {db json} { one $db {SELECT sync_apply($json)} }

# The worker.
proc sqlite_sync::start {db} { one $db {SELECT sync_start()} }
proc sqlite_sync::stop {db} { one $db {SELECT sync_stop()} }
proc sqlite_sync::push {db} { one $db {SELECT sync_push()} }
proc sqlite_sync::pull {db} { one $db {SELECT sync_pull()} }
proc sqlite_sync::online {db {value ""}} {
    if {$value eq ""} { return [one $db {SELECT sync_online()}] }
    set value [expr {$value ? 1 : 0}]
    one $db {SELECT sync_online(CAST($value AS INTEGER))}
}
# sync_config: read a key, or set it ("-default" puts it back to the default).
proc sqlite_sync::config {db key args} {
    if {[llength $args] == 0} { return [one $db {SELECT sync_config($key)}] }
    set value [lindex $args 0]
    if {$value eq "-default"} { return [one $db {SELECT sync_config($key, NULL)}] }
    one $db {SELECT sync_config($key, $value)}
}
# sync_wait: blocks up to ms; a Tcl list of the tables the server changed, or "".
proc sqlite_sync::wait {db ms} {
    set r [one $db {SELECT sync_wait(CAST($ms AS INTEGER))}]
    if {$r eq ""} { return "" }
    one $db {SELECT group_concat(value, ' ') FROM json_each($r)}
}

# Calls {*}$callback $tables from the event loop whenever the server changed
# tracked tables (sync_wait(0) polled every ms). Returns an id for cancel_change.
proc sqlite_sync::on_change {db callback {ms 100}} {
    variable watch
    set id sync[incr watch(count)]
    set watch($id) [list $db $callback $ms ""]
    wait $db 0   ;# only changes from now on
    poll $id
    return $id
}
proc sqlite_sync::poll {id} {
    variable watch
    if {![info exists watch($id)]} return
    lassign $watch($id) db callback ms
    if {[catch {wait $db 0} tables]} {
        unset watch($id)
        return -code error $tables
    }
    lset watch($id) 3 [after $ms [list sqlite_sync::poll $id]]
    if {$tables ne ""} { uplevel #0 [linsert $callback end $tables] }
}
proc sqlite_sync::cancel_change {id} {
    variable watch
    if {[info exists watch($id)]} {
        after cancel [lindex $watch($id) 3]
        unset watch($id)
    }
}

package provide sqlite_sync 0.1
