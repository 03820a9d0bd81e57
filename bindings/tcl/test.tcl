# Tests of the Tcl binding (tcltest) against a real syncd:
#   tclsh bindings/tcl/test.tcl
# The last line is "tcl: N passed, N failed" (", N skipped" if any).
package require tcltest
namespace import ::tcltest::test ::tcltest::cleanupTests
set here [file dirname [file normalize [info script]]]
set root [file dirname [file dirname $here]]
lappend auto_path $here
package require sqlite3
package require sqlite_sync

set syncd [expr {[info exists env(SYNCD)] ? $env(SYNCD) : [file join $root server syncd]}]
set schema [file join $root bindings todos.sql]
set dir [file join [expr {[info exists env(TMPDIR)] ? $env(TMPDIR) : "/tmp"}] sqlite-sync-tcl-[pid]]
file delete -force $dir
file mkdir $dir
set fd [open $schema]; set ddl [read $fd]; close $fd

# syncd on a free loopback port; its first stdout line is the url
set chan [open |[list $syncd --listen 127.0.0.1:0 --schema $schema --db $dir/server.db 2>$dir/syncd.log] r]
set url [gets $chan]

set nclients 0
proc client {{url ""}} {
    global dir ddl nclients
    set db c[incr nclients]
    sqlite3 $db $dir/$db.db
    sqlite_sync::load $db
    $db eval $ddl
    set ::id($db) [sqlite_sync::init $db $url]
    sqlite_sync::track $db todos
    return $db
}
proc wait_for {script {ms 10000}} {
    set end [expr {[clock milliseconds] + $ms}]
    while {![uplevel 1 [list expr $script]]} {
        if {[clock milliseconds] > $end} { return 0 }
        after 20
    }
    return 1
}

test load-1 {find_extension and load} -body {
    sqlite3 mem :memory:
    sqlite_sync::load mem
    list [file isfile [sqlite_sync::find_extension]] [mem onecolumn {SELECT sync_wire(1)}]
} -cleanup { mem close } -result {1 1}

test load-2 {SQLITE_SYNC_EXTENSION wins} -body {
    set env(SQLITE_SYNC_EXTENSION) /nonexistent/sync.so
    sqlite3 mem :memory:
    catch {sqlite_sync::load mem} msg
    set msg
} -cleanup { unset env(SQLITE_SYNC_EXTENSION); mem close } -match glob \
  -result {SQLITE_SYNC_EXTENSION=/nonexistent/sync.so does not name*}

test load-3 {load sets a busy timeout unless one is set} -body {
    sqlite3 m1 :memory:
    sqlite3 m2 :memory:
    m2 timeout 250
    sqlite_sync::load m1
    sqlite_sync::load m2
    list [m1 onecolumn {PRAGMA busy_timeout}] [m2 onecolumn {PRAGMA busy_timeout}]
} -cleanup { m1 close; m2 close } -result {5000 250}

test local-1 {init, track, pending, pending_rows} -body {
    set db [client]
    $db eval {INSERT INTO todos(id, title) VALUES ('a', 'buy milk')}
    $db eval {UPDATE todos SET done = 1 WHERE id = 'a'}
    set r [sqlite_sync::pending_rows $db]
    list [string length $::id($db)] [expr {[sqlite_sync::init $db] eq $::id($db)}] \
        [sqlite_sync::pending $db] [dict get [lindex $r 1] op] [dict get [lindex $r 1] data]
} -result {36 1 2 update {{"done":1}}}

test local-2 {mutate, errors} -body {
    set db [client]
    $db eval {CREATE TABLE nokey(a, b)}
    list [sqlite_sync::mutate $db todos insert {{"id":"x","title":"t","done":9223372036854775807}}] \
        [$db onecolumn {SELECT done FROM todos}] \
        [sqlite_sync::mutate $db todos update {{"id":"x","title":"t"}}] \
        [catch {sqlite_sync::track $db nokey} msg] $msg \
        [catch {sqlite_sync::mutate $db todos frobnicate {{"id":"x"}}}] [sqlite_sync::pending $db]
} -result {1 9223372036854775807 {} 1 {sync_track: table "nokey" has no PRIMARY KEY} 1 1}

test local-3 {push_batch, ack, apply, rejected, untrack} -body {
    set db [client]
    $db eval {INSERT INTO todos(id, title) VALUES ('a', 'milk'), ('b', 'bad')}
    # the answer resolves both, so both must have been handed out
    set batch [sqlite_sync::push_batch $db 2]
    set n [$db onecolumn {SELECT json_array_length($batch, '$.mutations')}]
    set acked [sqlite_sync::ack $db {{"results":[{"id":1,"status":"applied","row":{"id":"a","title":"MILK","done":0,"data":null},"version":1},{"id":2,"status":"rejected","reason":"no"}]}}]
    set rej [lindex [sqlite_sync::rejected $db] 0]
    set applied [sqlite_sync::apply $db {{"changes":[{"table":"todos","op":"upsert","pk":{"id":"c"},"row":{"id":"c","title":"call mum","done":0,"data":null},"version":3}],"cursor":"3"}}]
    $db eval {INSERT INTO todos(id, title) VALUES ('d', 'x')}
    sqlite_sync::untrack $db todos
    list $n $acked [dict get $rej reason] $applied [sqlite_sync::cursor $db] \
        [$db eval {SELECT id, title FROM todos ORDER BY id}] [sqlite_sync::pending $db] \
        [dict get [sqlite_sync::status $db] state]
} -result {2 2 no 1 3 {a MILK c {call mum} d x} 0 stopped}

test server-1 {push, pull, wait, config} -body {
    set a [client $url]
    set b [client $url]
    $a eval {INSERT INTO todos(id, title) VALUES ('t1', 'from tcl')}
    list [sqlite_sync::push $a] [expr {[sqlite_sync::pull $b] >= 1}] \
        [$b onecolumn {SELECT title FROM todos WHERE id = 't1'}] [sqlite_sync::wait $b 0] \
        [sqlite_sync::wait $b 10] [sqlite_sync::config $a batch_size 5] \
        [sqlite_sync::config $a batch_size -default] [catch {sqlite_sync::config $a nope}]
} -result {1 1 {from tcl} todos {} 5 1000 1}

test server-2 {start, on_change, online, stop} -body {
    set a [client $url]
    set b [client $url]
    sqlite_sync::start $a
    sqlite_sync::start $b
    set ::changed {}
    set w [sqlite_sync::on_change $b {lappend ::changed} 20]
    $a eval {INSERT INTO todos(id, title) VALUES ('t2', 'live')}
    set timer [after 10000 {set ::changed timeout}]
    vwait ::changed
    after cancel $timer
    sqlite_sync::cancel_change $w
    set r [list $::changed [wait_for {[$b exists {SELECT 1 FROM todos WHERE id = 't2'}]}]]
    lappend r [sqlite_sync::online $a 0]
    $a eval {INSERT INTO todos(id, title) VALUES ('t3', 'offline')}
    after 300
    lappend r [sqlite_sync::pending $a] [dict get [sqlite_sync::status $a] state]
    lappend r [sqlite_sync::online $a 1] [wait_for {[sqlite_sync::pending $a] == 0}]
    sqlite_sync::stop $a
    sqlite_sync::stop $b
    lappend r [dict get [sqlite_sync::status $a] state]
} -result {todos 1 0 1 offline 1 1 stopped}

foreach db [info commands c\[0-9\]*] { $db close }
exec kill [pid $chan]
catch {close $chan}
file delete -force $dir

set passed $::tcltest::numTests(Passed)
set failed $::tcltest::numTests(Failed)
set skipped $::tcltest::numTests(Skipped)
cleanupTests
puts "tcl: $passed passed, $failed failed[expr {$skipped ? ", $skipped skipped" : ""}]"
exit [expr {$failed > 0}]
