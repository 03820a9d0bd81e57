# sqlite_sync: offline-first sync for tclsqlite (package require sqlite3).
#
#   package require sqlite3
#   package require sqlite_sync
#   namespace import sqlite_sync::*         ;# optional: no name clashes with Tcl's
#   sqlite3 db todo.db
#   load_extension db                       ;# loads the extension
#   init db http://127.0.0.1:8080
#   track db todos
#   start db                                ;# the background worker
#   on_change db {apply {tables {puts "changed: $tables"}}}
#
# Every command and its options: bindings/tcl/README.md. Each wraps the
# extension's SQL functions (README, "API") on the connection command given.
# The extension's errors come out as Tcl errors with its message
# ("sync_track: table "x" has no PRIMARY KEY") and the -errorcode
# {SQLITE_SYNC SQLITE_ERROR message}: the name of SQLite's result code
# (SQLITE_BUSY, SQLITE_CONSTRAINT, ...) and the message. A bad argument the
# binding itself refuses gets {SQLITE_SYNC SQLITE_MISUSE message}.
#
# `load` and `apply` are the names of Tcl built-ins, so they are not exported
# (`namespace import` would fail on them): use load_extension and
# apply_changes; sqlite_sync::load and sqlite_sync::apply remain as aliases.
package require sqlite3

namespace eval sqlite_sync {
    variable here [file dirname [file normalize [info script]]]
    variable watch
    array set watch {}
    namespace export load_extension find_extension init track untrack mutate \
        pending pending_rows rejected clear_rejected orphans cursor push_batch ack \
        apply_changes start stop push pull online config wait wait_first_sync \
        status on_change cancel_change on_token cancel_token
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
        misuse "SQLITE_SYNC_EXTENSION=$p does not name an existing file"
    }
    set candidates [list [file join $here sync$suffix]]
    if {[file exists [file join $here installed.tcl]]} {
        lappend candidates [source [file join $here installed.tcl]]
    }
    lappend candidates [file join [file dirname [file dirname $here]] ext sync$suffix]
    foreach c $candidates {
        if {[file isfile $c]} { return $c }
    }
    misuse "sqlite-sync extension not found (run `make` in the repository, or set SQLITE_SYNC_EXTENSION); looked at: [join $candidates {, }]"
}

# Loads the extension into db; extension loading is switched off again after.
# The worker writes on its own connection, so a connection without a busy
# timeout (tclsqlite's default) would meet "database is locked": this gives
# it 5 seconds, as Python's sqlite3 and better-sqlite3 do, unless one is set.
proc sqlite_sync::load_extension {db {path ""}} {
    if {$path eq ""} { set path [find_extension] }
    if {[$db onecolumn {PRAGMA busy_timeout}] == 0} { $db timeout 5000 }
    $db enable_load_extension 1
    set rc [catch {$db eval {SELECT load_extension($path)}} msg]
    $db enable_load_extension 0
    if {$rc} { fail $db $msg }
    return $msg
}
interp alias {} sqlite_sync::load {} sqlite_sync::load_extension

# ---- errors ----

# The names of SQLite's primary result codes, for -errorcode.
namespace eval sqlite_sync {
    variable codes {
        1 SQLITE_ERROR 2 SQLITE_INTERNAL 3 SQLITE_PERM 4 SQLITE_ABORT 5 SQLITE_BUSY
        6 SQLITE_LOCKED 7 SQLITE_NOMEM 8 SQLITE_READONLY 9 SQLITE_INTERRUPT
        10 SQLITE_IOERR 11 SQLITE_CORRUPT 12 SQLITE_NOTFOUND 13 SQLITE_FULL
        14 SQLITE_CANTOPEN 15 SQLITE_PROTOCOL 16 SQLITE_EMPTY 17 SQLITE_SCHEMA
        18 SQLITE_TOOBIG 19 SQLITE_CONSTRAINT 20 SQLITE_MISMATCH 21 SQLITE_MISUSE
        22 SQLITE_NOLFS 23 SQLITE_AUTH 24 SQLITE_FORMAT 25 SQLITE_RANGE
        26 SQLITE_NOTADB 27 SQLITE_NOTICE 28 SQLITE_WARNING
    }
}

# Makes the proc that calls it fail with msg, the error of db's last
# statement, and -errorcode {SQLITE_SYNC <result code name> msg}.
proc sqlite_sync::fail {db msg} {
    return -code error -level 2 -errorcode [list SQLITE_SYNC [fail_code $db] $msg] $msg
}
proc sqlite_sync::fail_code {db} {
    variable codes
    set rc [expr {[catch {$db errorcode} ext] ? 1 : $ext & 0xff}]
    expr {[dict exists $codes $rc] ? [dict get $codes $rc] : "SQLITE_ERROR"}
}

# An argument the binding refuses before any SQL runs.
proc sqlite_sync::misuse {msg} {
    return -code error -level 2 -errorcode [list SQLITE_SYNC SQLITE_MISUSE $msg] $msg
}

# A query on the extension's tables before sync_init fails with "no such
# table"; this says what is missing instead, as the SQL functions do.
proc sqlite_sync::not_init {msg cmd} {
    if {[string match {no such table: sync_*} $msg]} {
        return "sqlite_sync::$cmd: sync_init() has not been called on this database"
    }
    return $msg
}

# ---- queries ----

proc sqlite_sync::one {db sql} {
    # the caller's variables are bound as parameters
    if {[catch {uplevel 1 [list $db onecolumn $sql]} r]} { fail $db $r }
    return $r
}

# A SELECT of a function that writes starts as a reader and then needs the
# write lock: if another connection (the worker, another process) commits in
# between, SQLite cannot wait and says "database is locked" at once. Outside
# a transaction such a call runs inside BEGIN IMMEDIATE, which waits for the
# lock under the busy timeout instead; inside one, the caller's BEGIN decides.
proc sqlite_sync::write {db sql} {
    if {[catch {$db eval {BEGIN IMMEDIATE}} msg]} {
        if {![string match {*within a transaction*} $msg]} { fail $db $msg }
        return [uplevel 1 [list sqlite_sync::one $db $sql]]
    }
    if {[catch {uplevel 1 [list sqlite_sync::one $db $sql]} r opts]} {
        catch {$db eval ROLLBACK}
        return -options $opts $r
    }
    if {[catch {$db eval COMMIT} msg]} {
        set code [fail_code $db]
        catch {$db eval ROLLBACK}
        return -code error -errorcode [list SQLITE_SYNC $code $msg] $msg
    }
    return $r
}

# The rows of a query as a list of dicts; cmd names the caller in errors.
proc sqlite_sync::rows {db sql cmd} {
    set out {}
    set rc [catch {
        $db eval $sql r {
            set d {}
            foreach c $r(*) { dict set d $c $r($c) }
            lappend out $d
        }
    } msg]
    if {$rc} { fail $db [not_init $msg $cmd] }
    return $out
}

# sync_init: the client id; url "" = bring your own transport; options as JSON text.
proc sqlite_sync::init {db {url ""} {options ""}} {
    if {$url eq ""} { unset url }
    if {$options eq ""} { return [one $db {SELECT sync_init($url)}] }
    return [one $db {SELECT sync_init($url, $options)}]
}
# sync_track; "-existing push|keep|server" says what happens to the rows
# already in the table (README, "Adding sync to an existing app"), or the
# options as JSON text.
proc sqlite_sync::track {db table args} {
    if {[llength $args] == 0} { return [write $db {SELECT sync_track($table)}] }
    if {[llength $args] == 1} {
        set options [lindex $args 0]
    } elseif {[llength $args] == 2 && [lindex $args 0] eq "-existing"} {
        set mode [lindex $args 1]
        set options [one $db {SELECT json_object('existing', $mode)}]
    } else {
        misuse {wrong # args: should be "sqlite_sync::track db table ?-existing push|keep|server? or ?options_json?"}
    }
    write $db {SELECT sync_track($table, $options)}
}
proc sqlite_sync::untrack {db table} { write $db {SELECT sync_untrack($table)} }

# sync_mutate: the mutation id, "" when nothing changed. row is a dict of
# column values, bound as tclsqlite binds a variable (an integer or double
# value as a number, a byte array as a BLOB, anything else as text, which
# the column's affinity converts as in an INSERT); with "-null v", a value
# equal to v is NULL. JSON object text ({"id":"a"}) is taken as it is.
proc sqlite_sync::mutate {db table op row args} {
    if {[llength $args] == 2 && [lindex $args 0] eq "-null"} {
        set null [lindex $args 1]
    } elseif {[llength $args] != 0} {
        misuse {wrong # args: should be "sqlite_sync::mutate db table op row ?-null value?"}
    }
    # a dict has an even number of elements; JSON object text is one
    if {[catch {llength $row} n] || $n % 2} {
        set json $row
    } else {
        set json [to_json $db $row [expr {[info exists null] ? [list $null] : {}}]]
    }
    write $db {SELECT sync_mutate($table, $op, $json)}
}

# A dict as a JSON object, built by SQLite's json_object from bound values so
# numbers and text come out exactly; 60 pairs per statement (SQLite's default
# limit is 127 arguments per function).
proc sqlite_sync::to_json {db row null} {
    set parts {}
    set pairs [dict get $row]
    for {set i 0} {$i < [llength $pairs]} {incr i 120} {
        set args {}
        set j 0
        foreach {k v} [lrange $pairs $i [expr {$i + 119}]] {
            set k$j $k
            if {[llength $null] && $v eq [lindex $null 0]} {
                lappend args "\$k$j, NULL"
            } elseif {[string match {*bytearray*no string representation*} \
                           [::tcl::unsupported::representation $v]]} {
                # binary encode gives a byte array too: CAST makes it text
                set v$j [binary encode base64 $v]
                lappend args "\$k$j, json_object('\$base64', CAST(\$v$j AS TEXT))"
            } else {
                set v$j $v
                lappend args "\$k$j, \$v$j"
            }
            incr j
        }
        set o [one $db "SELECT json_object([join $args {, }])"]
        if {$o ne "{}"} { lappend parts [string range $o 1 end-1] }
    }
    return "{[join $parts ,]}"
}

proc sqlite_sync::pending {db} { one $db {SELECT sync_pending()} }
proc sqlite_sync::cursor {db} { one $db {SELECT sync_cursor()} }
proc sqlite_sync::pending_rows {db} { rows $db {SELECT * FROM sync_pending} pending_rows }
proc sqlite_sync::orphans {db} { rows $db {SELECT * FROM sync_orphans} orphans }
proc sqlite_sync::rejected {db} { rows $db {SELECT * FROM sync_rejected ORDER BY id} rejected }
proc sqlite_sync::status {db} { lindex [rows $db {SELECT * FROM sync_status} status] 0 }

# Acknowledges refused mutations: deletes the given ids from sync_rejected, or
# every row when none is given. Returns how many rows went.
proc sqlite_sync::clear_rejected {db args} {
    foreach id $args {
        if {![string is wideinteger -strict $id]} {
            misuse "sqlite_sync::clear_rejected: mutation id must be an integer, not \"$id\""
        }
    }
    set sql {DELETE FROM sync_rejected}
    if {[llength $args]} {
        set ids [lmap id $args { expr {wide($id)} }]
        append sql " WHERE id IN ([join $ids ,])"
    }
    if {[catch {$db eval $sql} msg]} { fail $db [not_init $msg clear_rejected] }
    $db changes
}

# Bring your own transport.
proc sqlite_sync::push_batch {db {limit ""}} {
    if {$limit eq ""} { return [write $db {SELECT sync_push_batch()}] }
    set limit [integer $limit]
    write $db {SELECT sync_push_batch($limit)}
}
proc sqlite_sync::ack {db json} { write $db {SELECT sync_ack($json)} }
proc sqlite_sync::apply_changes {db json} { write $db {SELECT sync_apply($json)} }
interp alias {} sqlite_sync::apply {} sqlite_sync::apply_changes

# A Tcl integer as an integer SQL parameter; anything else stays text, which
# the extension refuses with its own message ("must be ... integer").
proc sqlite_sync::integer {v} {
    if {[string is wideinteger -strict $v]} { return [expr {wide($v)}] }
    return $v
}

# The worker.
proc sqlite_sync::start {db} { one $db {SELECT sync_start()} }
proc sqlite_sync::stop {db} { one $db {SELECT sync_stop()} }
proc sqlite_sync::push {db} { one $db {SELECT sync_push()} }
proc sqlite_sync::pull {db} { one $db {SELECT sync_pull()} }
proc sqlite_sync::online {db {value ""}} {
    if {$value eq ""} { return [one $db {SELECT sync_online()}] }
    if {![string is boolean -strict $value]} {
        misuse "sqlite_sync::online: value must be a boolean, not \"$value\""
    }
    set value [expr {$value ? 1 : 0}]
    one $db {SELECT sync_online($value)}
}
# sync_config: read a key, or set it ("-default" puts it back to the default).
proc sqlite_sync::config {db key args} {
    if {[llength $args] == 0} { return [one $db {SELECT sync_config($key)}] }
    set value [lindex $args 0]
    if {$value eq "-default"} { return [one $db {SELECT sync_config($key, NULL)}] }
    one $db {SELECT sync_config($key, $value)}
}

# sync_wait: blocks up to ms; a Tcl list of the tables that changed, or "".
# scope "server" (the default): changes the server sent; "all": local
# writes to tracked tables too.
proc sqlite_sync::wait {db ms {scope ""}} {
    set ms [integer $ms]
    if {$scope eq ""} {
        set r [one $db {SELECT sync_wait($ms)}]
    } else {
        set r [one $db {SELECT sync_wait($ms, $scope)}]
    }
    if {$r eq ""} { return "" }
    one $db {SELECT group_concat(value, ' ') FROM json_each($r)}
}

# Waits, running the event loop, until the first full sync from the server
# has completed (sync_status.first_sync_done), at most ms milliseconds.
# Returns 1 once it has, 0 on timeout.
proc sqlite_sync::wait_first_sync {db ms} {
    variable watch
    if {![string is wideinteger -strict $ms] || $ms < 0} {
        misuse "sqlite_sync::wait_first_sync: timeout_ms must be a non-negative integer, not \"$ms\""
    }
    set end [expr {[clock milliseconds] + $ms}]
    set var [namespace current]::watch(first[incr watch(count)])
    while 1 {
        set s [status $db]
        if {![dict exists $s first_sync_done]} {
            misuse "sqlite_sync::wait_first_sync: this extension's sync_status has no first_sync_done column (rebuild it)"
        }
        if {[dict get $s first_sync_done]} { return 1 }
        set left [expr {$end - [clock milliseconds]}]
        if {$left <= 0} { return 0 }
        after [expr {min($left, 20)}] [list set $var 1]
        vwait $var
        unset $var
    }
}

# Calls {*}$callback $tables from the event loop whenever tracked tables
# changed (sync_wait(0) polled every -interval ms, 100 by default; -scope
# as for wait). The third argument may also be the interval alone.
# Returns an id for cancel_change.
proc sqlite_sync::on_change {db callback args} {
    variable watch
    if {[llength $args] == 1} { set args [list -interval [lindex $args 0]] }
    set o [options on_change {-interval 100 -scope ""} $args]
    set ms [dict get $o -interval]
    set scope [dict get $o -scope]
    wait $db 0 $scope   ;# only changes from now on (and checks the scope)
    set id sync[incr watch(count)]
    set watch($id) [list $db $callback $ms $scope ""]
    poll $id
    return $id
}
proc sqlite_sync::poll {id} {
    variable watch
    if {![info exists watch($id)]} return
    lassign $watch($id) db callback ms scope
    if {[catch {wait $db 0 $scope} tables opts]} {
        unset watch($id)
        return -options $opts $tables
    }
    lset watch($id) 4 [after $ms [list sqlite_sync::poll $id]]
    if {$tables ne ""} { uplevel #0 [linsert $callback end $tables] }
}

# Options of on_change and on_token: a dict of the given -name value pairs
# over the defaults, each a non-negative integer but -scope.
proc sqlite_sync::options {cmd defaults given} {
    if {[llength $given] % 2} { misuse "sqlite_sync::$cmd: option \"[lindex $given end]\" needs a value" }
    set known [join [dict keys $defaults] {, }]
    foreach {opt v} $given {
        if {![dict exists $defaults $opt]} { misuse "sqlite_sync::$cmd: unknown option \"$opt\" ($known)" }
        if {$opt ne "-scope" && (![string is wideinteger -strict $v] || $v < 0)} {
            misuse "sqlite_sync::$cmd: [string range $opt 1 end] must be a non-negative integer, not \"$v\""
        }
        dict set defaults $opt $v
    }
    return $defaults
}

# The token lives in the process's memory only (README, "Running with a
# server"): on_token calls {*}$callback $client_id, which returns a token,
# at once and then from the event loop whenever the worker needs a new one
# (sync_status.needs_token, after a 401 or 403: checked every -interval ms,
# 500 by default) and, with -refresh ms, that often anyway, before the
# token expires. The worker resumes as soon as the token is set. An error
# of the callback goes to the event loop's background error handler and
# the next check tries again. Returns an id for cancel_token.
proc sqlite_sync::on_token {db callback args} {
    variable watch
    set o [options on_token {-interval 500 -refresh 0} $args]
    if {![dict exists [status $db] needs_token]} {
        misuse "sqlite_sync::on_token: this extension's sync_status has no needs_token column (rebuild it)"
    }
    give_token $db $callback
    set id sync[incr watch(count)]
    set ms [dict get $o -interval]
    set watch($id) [list $db $callback $ms [dict get $o -refresh] \
                        [after $ms [list sqlite_sync::token_poll $id]] [clock milliseconds]]
    return $id
}
proc sqlite_sync::give_token {db callback} {
    set token [uplevel #0 [linsert $callback end [dict get [status $db] client_id]]]
    if {$token eq ""} { misuse "sqlite_sync::on_token: the callback gave no token" }
    config $db token $token
}
proc sqlite_sync::token_poll {id} {
    variable watch
    if {![info exists watch($id)]} return
    lassign $watch($id) db callback ms refresh
    if {[catch {dict get [status $db] needs_token} needed opts]} {
        unset watch($id)   ;# the connection is gone or broken: stop
        return -options $opts $needed
    }
    set rc 0
    set now [clock milliseconds]
    if {$needed || ($refresh > 0 && $now - [lindex $watch($id) 5] >= $refresh)} {
        lset watch($id) 5 $now
        set rc [catch {give_token $db $callback} msg opts]
    }
    lset watch($id) 4 [after $ms [list sqlite_sync::token_poll $id]]
    if {$rc} { return -options $opts $msg }
}

proc sqlite_sync::cancel_change {id} {
    variable watch
    if {[info exists watch($id)]} {
        after cancel [lindex $watch($id) 4]
        unset watch($id)
    }
}
interp alias {} sqlite_sync::cancel_token {} sqlite_sync::cancel_change

package provide sqlite_sync 0.2
