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

# the variable is put back as it was: under make asan it names the
# sanitizer build, which every later test must load too
test load-2 {SQLITE_SYNC_EXTENSION wins} -setup {
    set saved [array get env SQLITE_SYNC_EXTENSION]
} -body {
    set env(SQLITE_SYNC_EXTENSION) /nonexistent/sync.so
    sqlite3 mem :memory:
    catch {sqlite_sync::load mem} msg
    set msg
} -cleanup { unset env(SQLITE_SYNC_EXTENSION); array set env $saved; mem close } -match glob \
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

test import-1 {namespace import of every exported command, no clash with Tcl's} -body {
    set i [interp create]
    $i eval [list lappend auto_path $here]
    $i eval {
        package require sqlite_sync
        namespace import sqlite_sync::*
        sqlite3 m :memory:
        load_extension m
        set r [list [m onecolumn {SELECT sync_wire(1)}]]
        foreach c [namespace eval sqlite_sync {namespace export}] {
            if {[namespace origin $c] ne "::sqlite_sync::$c"} { lappend r "$c not imported" }
        }
        # the built-ins are untouched
        lappend r [apply {x {expr {$x + 1}}} 1] [llength [info commands load]]
    }
} -cleanup { interp delete $i } -result {1 2 1}

test import-2 {the old names load and apply stay, not exported} -body {
    sqlite3 mem :memory:
    sqlite_sync::load mem
    mem eval {CREATE TABLE t(id INTEGER PRIMARY KEY, v)}
    sqlite_sync::init mem
    sqlite_sync::track mem t
    list [sqlite_sync::apply mem {{"changes":[{"table":"t","op":"upsert","pk":{"id":1},"row":{"id":1,"v":"x"},"version":1}],"cursor":"1"}}] \
        [mem onecolumn {SELECT v FROM t}] \
        [lsearch -all -inline -regexp [namespace eval sqlite_sync {namespace export}] {^(load|apply)$}]
} -cleanup { mem close } -result {1 x {}}

test errorcode-1 {extension errors carry -errorcode {SQLITE_SYNC code message}} -body {
    set db [client]
    $db eval {CREATE TABLE nokey(a, b)}
    catch {sqlite_sync::track $db nokey} msg opts
    set r [list [dict get $opts -errorcode]]
    catch {sqlite_sync::mutate $db todos frobnicate {id x}} msg opts
    lappend r [lrange [dict get $opts -errorcode] 0 1]
    sqlite3 mem :memory:
    sqlite_sync::load_extension mem
    foreach cmd {rejected pending_rows clear_rejected} {
        catch {sqlite_sync::$cmd mem} msg opts
        lappend r [dict get $opts -errorcode]
    }
    catch {sqlite_sync::online $db maybe} msg opts
    lappend r [dict get $opts -errorcode]
} -cleanup { mem close } -result [list \
    {SQLITE_SYNC SQLITE_ERROR {sync_track: table "nokey" has no PRIMARY KEY}} \
    {SQLITE_SYNC SQLITE_ERROR} \
    {SQLITE_SYNC SQLITE_ERROR {sqlite_sync::rejected: sync_init() has not been called on this database}} \
    {SQLITE_SYNC SQLITE_ERROR {sync_pending: sync_init() has not been called on this database}} \
    {SQLITE_SYNC SQLITE_ERROR {sqlite_sync::clear_rejected: sync_init() has not been called on this database}} \
    {SQLITE_SYNC SQLITE_MISUSE {sqlite_sync::online: value must be a boolean, not "maybe"}}]

test errorcode-2 {the result code's name: a locked database says SQLITE_BUSY} -body {
    set db [client]
    sqlite3 other $dir/$db.db
    other eval {BEGIN IMMEDIATE}
    $db timeout 0
    catch {sqlite_sync::clear_rejected $db} msg opts
    dict get $opts -errorcode
} -cleanup { other eval ROLLBACK; other close } -match glob -result {SQLITE_SYNC SQLITE_BUSY *locked*}

test mutate-dict-1 {mutate takes a dict: numbers, text, BLOB, -null} -body {
    set db [client]
    set big 9223372036854775807
    set r [list [sqlite_sync::mutate $db todos insert [dict create id a title {say "hi" \ {ok}} done $big \
                                                           data [binary format c3 {0 1 -1}]]]]
    lappend r [$db eval {SELECT title, done, typeof(done), hex(data) FROM todos}]
    lappend r [dict get [lindex [sqlite_sync::pending_rows $db] 0] data]
    lappend r [sqlite_sync::mutate $db todos update {id a done 0 data NULL} -null NULL]
    lappend r [$db eval {SELECT done, typeof(data) FROM todos}]
    # the same as JSON text, as before
    lappend r [sqlite_sync::mutate $db todos upsert {{"id":"b","title":"json"}}]
    lappend r [sqlite_sync::mutate $db todos delete {id a}] [$db eval {SELECT id FROM todos}]
} -result [list 1 [list {say "hi" \ {ok}} 9223372036854775807 integer 0001FF] \
    {{"id":"a","title":"say \"hi\" \\ {ok}","done":9223372036854775807,"data":{"$base64":"AAH/"}}} \
    2 {0 null} 3 4 b]

test mutate-dict-2 {a dict of more columns than one SQL function takes} -body {
    set db [client]
    set cols [lmap i [lsearch -all [lrepeat 62 x] x] { string cat c$i }]
    $db eval "CREATE TABLE wide(id INTEGER PRIMARY KEY, [join $cols {, }])"
    sqlite_sync::track $db wide
    set row [dict create id 1]
    foreach c $cols { dict set row $c v$c }
    sqlite_sync::mutate $db wide insert $row
    list [$db onecolumn {SELECT c0 || c45 || c61 FROM wide WHERE id = 1}] \
        [catch {sqlite_sync::mutate $db wide update {id 1 c0 a} -nul x} msg] $msg
} -result {vc0vc45vc61 1 {wrong # args: should be "sqlite_sync::mutate db table op row ?-null value?"}}

test write-1 {mutate waits for a write lock another process holds, not "database is locked"} -setup {
    set db [client]
    $db eval {CREATE TABLE other(x)}
    # another process commits a row every millisecond or so until killed (as
    # a busy worker does; back to back, it would starve any other writer)
    set w [open |[list [info nameofexecutable]] w]
    puts $w [list apply {file {
        package require sqlite3
        sqlite3 o $file
        o timeout 10000
        while 1 { o eval {INSERT INTO other VALUES(1)}; after 1 }
    }} $dir/$db.db]
    flush $w
    wait_for {[$db onecolumn {SELECT count(*) FROM other}] > 0}
} -body {
    set failed {}
    for {set i 0} {$i < 200} {incr i} {
        if {[catch {sqlite_sync::mutate $db todos insert [dict create id w$i title t]} msg]} {
            lappend failed $msg
        }
    }
    list [lsort -unique $failed] [sqlite_sync::pending $db]
} -cleanup {
    exec kill [pid $w]
    catch {close $w}
} -result {{} 200}

test existing-1 {track -existing: rows already in the table pushed or kept} -body {
    set db [client]
    $db eval {CREATE TABLE old(id INTEGER PRIMARY KEY, v); INSERT INTO old VALUES (1, 'a'), (2, 'b')}
    $db eval {CREATE TABLE mine(id INTEGER PRIMARY KEY, v); INSERT INTO mine VALUES (1, 'x')}
    $db eval {CREATE TABLE t3(id INTEGER PRIMARY KEY)}
    set r [list [sqlite_sync::track $db old] [sqlite_sync::pending $db]]
    lappend r [sqlite_sync::track $db mine -existing keep] [sqlite_sync::pending $db]
    set o [lindex [sqlite_sync::orphans $db] 0]
    lappend r [dict get $o table_name] [dict get $o pk] [dict get $o state]
    lappend r [sqlite_sync::track $db t3 {{"existing":"server"}}]
    lappend r [catch {sqlite_sync::track $db t3 -existing maybe} msg] $msg
    lappend r [catch {sqlite_sync::track $db t3 -exist keep} msg] $msg
} -result {1 2 1 2 mine {{"id":1}} kept 1 1 {sync_track: option "existing" must be "push", "keep" or "server"} 1 {wrong # args: should be "sqlite_sync::track db table ?-existing push|keep|server? or ?options_json?"}}

test clear-rejected-1 {clear_rejected: some ids, then all} -body {
    set db [client]
    $db eval {INSERT INTO todos(id, title) VALUES ('a', '1'), ('b', '2'), ('c', '3')}
    sqlite_sync::push_batch $db
    sqlite_sync::ack $db {{"results":[{"id":1,"status":"rejected","reason":"no"},{"id":2,"status":"rejected","reason":"no"},{"id":3,"status":"rejected","reason":"no"}]}}
    set r [list [llength [sqlite_sync::rejected $db]] [sqlite_sync::clear_rejected $db 2]]
    lappend r [lmap x [sqlite_sync::rejected $db] { dict get $x id }]
    lappend r [catch {sqlite_sync::clear_rejected $db 1 x} msg opts] [dict get $opts -errorcode]
    lappend r [sqlite_sync::clear_rejected $db] [sqlite_sync::rejected $db] [sqlite_sync::clear_rejected $db]
} -result {3 1 {1 3} 1 {SQLITE_SYNC SQLITE_MISUSE {sqlite_sync::clear_rejected: mutation id must be an integer, not "x"}} 2 {} 0}

test wait-1 {wait and on_change refuse a bad argument} -body {
    set db [client]
    set r {}
    foreach ms {abc -1 1.5 12abc} {
        lappend r [catch {sqlite_sync::wait $db $ms} msg opts] $msg
    }
    lappend r [catch {sqlite_sync::on_change $db puts -interval x} msg] $msg
    lappend r [catch {sqlite_sync::on_change $db puts -every 5} msg] $msg
    lappend r [catch {sqlite_sync::wait_first_sync $db soon} msg] $msg
    lappend r [sqlite_sync::wait $db 0] [sqlite_sync::wait $db 5]
} -result [list \
    1 {sync_wait: timeout_ms must be a non-negative integer} 1 {sync_wait: timeout_ms must be a non-negative integer} \
    1 {sync_wait: timeout_ms must be a non-negative integer} 1 {sync_wait: timeout_ms must be a non-negative integer} \
    1 {sqlite_sync::on_change: interval must be a non-negative integer, not "x"} \
    1 {sqlite_sync::on_change: unknown option "-every" (-interval, -scope)} \
    1 {sqlite_sync::wait_first_sync: timeout_ms must be a non-negative integer, not "soon"} {} {}]

test scope-1 {wait and on_change with scope all see local writes} -body {
    set db [client $url]
    sqlite_sync::start $db
    set r [list [sqlite_sync::wait $db 0 all]]
    $db eval {INSERT INTO todos(id, title) VALUES ('s1', 'local')}
    lappend r [sqlite_sync::wait $db 5000 all]
    set ::changed {}
    set w [sqlite_sync::on_change $db {lappend ::changed} -interval 20 -scope all]
    $db eval {INSERT INTO todos(id, title) VALUES ('s2', 'local')}
    set timer [after 10000 {set ::changed timeout}]
    vwait ::changed
    after cancel $timer
    sqlite_sync::cancel_change $w
    lappend r $::changed [catch {sqlite_sync::wait $db 0 nowhere}]
} -cleanup { sqlite_sync::stop $db } -result {{} todos todos 1}

test first-sync-1 {wait_first_sync: 1 once the worker has synced, 0 on timeout} -body {
    set a [client $url]
    $a eval {INSERT INTO todos(id, title) VALUES ('f1', 'first')}
    sqlite_sync::push $a
    set b [client $url]
    set off [client http://127.0.0.1:9]
    set r [list [dict get [sqlite_sync::status $b] first_sync_done]]
    sqlite_sync::start $b
    sqlite_sync::start $off
    lappend r [sqlite_sync::wait_first_sync $b 10000] [dict get [sqlite_sync::status $b] first_sync_done] \
        [$b onecolumn {SELECT title FROM todos WHERE id = 'f1'}] \
        [sqlite_sync::wait_first_sync $off 200]
} -cleanup { sqlite_sync::stop $b; sqlite_sync::stop $off } -result {0 1 1 first 0}

# Waits running the event loop (the watches poll from it) until script is true.
proc ev_wait_for {script {ms 10000}} {
    set end [expr {[clock milliseconds] + $ms}]
    while {![uplevel 1 [list expr $script]]} {
        if {[clock milliseconds] > $end} { return 0 }
        after 20 {set ::tick 1}
        vwait ::tick
    }
    return 1
}

test token-1 {on_token: a token at once, a new one after a 401, -refresh} -setup {
    set key $dir/secret.key
    set fd [open $key w]; puts $fd "tcl-test-secret"; close $fd
    set chan2 [open |[list $syncd --listen 127.0.0.1:0 --schema $schema --db $dir/private.db \
                          --client-secret-file $key 2>@stderr] r]
    set url2 [gets $chan2]
    set ::calls {}
    # the first token is refused, the next ones are the client's own
    proc ::give {id} {
        lappend ::calls $id
        if {[llength $::calls] == 1} { return wrong }
        exec $::syncd --client-secret-file $::key --issue-token $id
    }
} -body {
    set db [client $url2]
    set t [sqlite_sync::on_token $db ::give -interval 20]
    $db eval {INSERT INTO todos(id, title) VALUES ('k1', 'with a token')}
    sqlite_sync::start $db
    set r [list [ev_wait_for {[sqlite_sync::pending $db] == 0}] \
               [expr {[lsort -unique $::calls] eq [list $::id($db)]}] \
               [expr {[llength $::calls] >= 2}] [dict get [sqlite_sync::status $db] needs_token] \
               [sqlite_sync::config $db token]]
    sqlite_sync::cancel_token $t
    # -refresh: asked again before any 401
    set n [llength $::calls]
    set t [sqlite_sync::on_token $db ::give -interval 10 -refresh 30]
    lappend r [ev_wait_for {[llength $::calls] >= $n + 3}]
    sqlite_sync::cancel_token $t
    lappend r [catch {sqlite_sync::on_token $db ::give -refresh soon} msg] $msg
} -cleanup {
    sqlite_sync::stop $db
    exec kill [pid $chan2]
    catch {close $chan2}
} -result {1 1 1 0 ******** 1 1 {sqlite_sync::on_token: refresh must be a non-negative integer, not "soon"}}

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
