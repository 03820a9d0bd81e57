/*
** fphash.h: the row hash of the verify protocol (POST /verify in
** docs/PROTOCOL.md), shared by syncd and the extension so that both sides,
** and both of syncd's storages, hash a row alike.
**
** A value is hashed by what it is, not by how it is written: an integer as
** its 64 bits (true and false as 1 and 0), a real as the bits of its double
** (so 0.1 written with 17 digits or the shortest form is one value), text as
** its unescaped bytes, a BLOB as its bytes ({"$base64"} and {"$hex"} alike),
** NULL as itself, any other object or array as its compact JSON text. A
** column's hash covers its name and its value; a row's columns are summed
** (mod 2^64), so their order does not matter. The key hash is the mixed sum
** over the key's columns, the row hash mixes the key hash with the sum over
** the row's columns. Not a cryptographic hash: it finds accidents (a lost
** write, a database edited by hand), not an adversary.
*/
#ifndef SYNC_FPHASH_H
#define SYNC_FPHASH_H

#include "sqlite_api.h"

#include <stdint.h>

/* The hash of column name[0..n) holding v. */
uint64_t fphash_value(const char *name, int n, sqlite3_value *v);

/* The hash of column name[0..n) holding the JSON value z[0..nz) (a value
** jscan_valid accepted, as the -> operator renders it or as written).
** Returns 0 when out of memory, with *oom set. */
uint64_t fphash_json(const char *name, int n, const char *z, int nz, int *oom);

/* The sum of fphash_json over the members of the JSON object z[0..nz)
** whose name is one of only[0..nOnly) (only NULL: every member). -1 when
** out of memory, else 0. */
int fphash_object(const char *z, int nz, const char *const *only, int nOnly, uint64_t *sum);

/* The key hash from the sum over the key's columns. */
uint64_t fphash_key(uint64_t keySum);

/* The row hash from the key hash and the sum over the row's columns. */
uint64_t fphash_row(uint64_t keyHash, uint64_t rowSum);

#endif
