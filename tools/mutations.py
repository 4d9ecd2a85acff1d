"""The deliberate bugs ``python tools/mutate.py`` puts into chrononaut, one at a time.

Each entry is a dict:

- ``id``: a short name, lowercase words joined by ``-``;
- ``description``: the bug, in one line;
- ``file``: the file under ``chrononaut/`` it changes;
- ``original``: text that occurs exactly once in that file (else the entry is STALE);
- ``replacement``: what the bug puts in its place;
- ``tests``: pytest paths or node ids that should fail; when in doubt name the
  whole ``tests/locking`` or ``tests/versioning`` directory, but a smaller set
  makes the check faster.

Keep the bugs realistic (a plausible slip in a real change) and single (one
place in one file). When a feature lands, add the bugs its tests are meant to
catch; when a refactoring moves code, update ``original`` of the entries it
made STALE.

Equivalent mutants (a change no behaviour can tell apart) stay out of the list:
for example dropping ``l.pid <> pg_backend_pid()`` from the guard's lock-table
read changes nothing, because the session's own ``lock()`` keys never reach it.
"""

MUTATIONS = [
    # --- creation events as one row per flush (issue 11) ---------------------------
    {
        "id": "span-upper-inclusive-dropped",
        "description": "an event row's key span leaves out its largest key",
        "file": "chrononaut/versioning/creations.py",
        "original": "THEN max(k) + 1 END",
        "replacement": "THEN max(k) END",
        "tests": ["tests/versioning/test_creations.py"],
    },
    {
        "id": "runs-split-at-the-gap",
        "description": "keys exactly MAX_GAP apart start a new event row",
        "file": "chrononaut/versioning/creations.py",
        "original": "if b - a > MAX_GAP]",
        "replacement": "if b - a >= MAX_GAP]",
        "tests": ["tests/versioning/test_creations.py"],
    },
    {
        "id": "record-id-lost",
        "description": "a single integer key's lookup goes to the GIN path, which has no spans",
        "file": "chrononaut/versioning/creations.py",
        "original": "return identity[0] if integer_keyed(cls) else None",
        "replacement": "return None",
        "tests": ["tests/versioning/test_creations.py"],
    },
    # --- performance round 2 (issue 13) -------------------------------------------
    {
        "id": "arrays-quote-unescaped",
        "description": "array text: a double quote inside a string is not escaped",
        "file": "chrononaut/_arrays.py",
        "original": """.replace('"', '\\\\"')""",
        "replacement": "",
        "tests": ["tests/test_arrays.py"],
    },
    {
        "id": "creation-earlier-event-wins",
        "description": "of two creation events at one version, version_at() takes the earlier",
        "file": "chrononaut/versioning/queries.py",
        "original": ".order_by(table.c.version.desc(), table.c.changed.desc())",
        "replacement": ".order_by(table.c.version.desc(), table.c.changed)",
        "tests": ["tests/versioning/test_creations.py"],
    },
    {
        "id": "history-change-info-assignable",
        "description": "a loaded history object accepts a new change_info, kept in memory only",
        "file": "chrononaut/versioning/history.py",
        "original": "        if cast(Any, sa.inspect(self)).key is not None:",
        "replacement": "        if False:",
        "tests": ["tests/versioning/test_history_change_info.py"],
    },
    # --- changesets, creation events and the activity feed ----------------------
    {
        "id": "feed-keyset-repeats-ties",
        "description": "a branch after the cursor's keeps rows at the cursor's time: pages repeat",
        "file": "chrononaut/versioning/activity_sql.py",
        "original": "        return order[0] < changed\n",
        "replacement": "        return order[0] <= changed\n",
        "tests": ["tests/versioning/test_activity.py"],
    },
    {
        "id": "feed-limit-zero-accepted",
        "description": "activity(limit=0) is sent to the database instead of refused",
        "file": "chrononaut/versioning/activity.py",
        "original": "    if not 1 <= value <= MAX_LIMIT:",
        "replacement": "    if not 0 <= value <= MAX_LIMIT:",
        "tests": ["tests/versioning/test_activity.py"],
    },
    {
        "id": "creation-pending-info-kept",
        "description": "a creation event does not consume the record's pending top-level info",
        "file": "chrononaut/versioning/creations.py",
        "original": "            state.info.pop(context.PENDING_TOP_INFO_KEY, None)",
        "replacement": "            pass",
        "tests": ["tests/versioning/test_creations.py"],
    },
    {
        "id": "creation-infos-all-shared",
        "description": "a class's creation events all take the first record's change_info",
        "file": "chrononaut/versioning/creations.py",
        "original": "uniform = all(info is first or info == first for info in group.infos)",
        "replacement": "uniform = True",
        "tests": ["tests/versioning/test_creations.py"],
    },
    {
        "id": "version-at-before-creation",
        "description": "version_at() at the very instant of a record's creation answers None",
        "file": "chrononaut/versioning/queries.py",
        "original": "    if created is not None and created > at:",
        "replacement": "    if created is not None and created >= at:",
        "tests": ["tests/versioning/test_creations.py", "tests/versioning/test_queries.py"],
    },
    {
        "id": "transaction-id-written-null",
        "description": "history INSERTs name transaction_id, writing NULL over its default",
        "file": "chrononaut/versioning/history.py",
        "original": "    return [c for c in table.c if c.info.get(INFO_KEY) != TRANSACTION_ID]",
        "replacement": "    return list(table.c)",
        "tests": ["tests/versioning/test_creations.py"],
    },
    # --- versioning: what history records -------------------------------------
    {
        "id": "hidden-copied-to-history",
        "description": "hidden columns get a history column, so their values are kept",
        "file": "chrononaut/versioning/history.py",
        "original": "tracked_here = {k: c for k, c in own.items() if k not in hidden | untracked}",
        "replacement": "tracked_here = {k: c for k, c in own.items() if k not in untracked}",
        "tests": [
            "tests/versioning/test_recording.py",
            "tests/versioning/test_history_schema.py",
            "tests/versioning/test_inheritance_single.py",
        ],
    },
    {
        "id": "untracked-copied",
        "description": "untracked columns count as tracked: copied and versioned",
        "file": "chrononaut/versioning/history.py",
        "original": "tracked = {k: c for k, c in columns.items() if k not in hidden | untracked}",
        "replacement": "tracked = {k: c for k, c in columns.items() if k not in hidden}",
        "tests": ["tests/versioning/test_recording.py", "tests/versioning/test_options.py"],
    },
    {
        "id": "history-keeps-unique",
        "description": "history copies keep the model's unique constraints",
        "file": "chrononaut/versioning/history.py",
        "original": "    copy.unique = False\n",
        "replacement": "    copy.unique = column.unique\n",
        "tests": ["tests/versioning/test_history_schema.py", "tests/versioning/test_recording.py"],
    },
    {
        "id": "user-id-dropped",
        "description": "change_info of a flushed change no longer records the acting user",
        "file": "chrononaut/versioning/change_info.py",
        "original": '"user_id": obj._fetch_current_user_id(),',
        "replacement": '"user_id": None,',
        "tests": ["tests/versioning/test_change_info.py"],
    },
    {
        "id": "extra-info-dropped",
        "description": "extra change info (rationale, extra_change_info) is not recorded",
        "file": "chrononaut/versioning/change_info.py",
        "original": '        if extra:\n            info["extra"] = extra\n',
        "replacement": "",
        "tests": ["tests/versioning/test_change_info_context.py"],
    },
    {
        "id": "changed-not-utc",
        "description": "changed is a naive local time, read by PostgreSQL in the session's zone",
        "file": "chrononaut/versioning/recorder.py",
        "original": "    return datetime.now(timezone.utc)",
        "replacement": "    return datetime.now()",
        "tests": [
            "tests/versioning/test_recording_edge_cases.py",
            "tests/versioning/test_change_info.py",
        ],
    },
    {
        "id": "prior-values-are-new",
        "description": "history records the new value of a changed column, not the prior one",
        "file": "chrononaut/versioning/recorder.py",
        "original": "            values[key] = committed[key]\n",
        "replacement": "            values[key] = state.dict.get(key, committed[key])\n",
        "tests": ["tests/versioning/test_recording.py"],
    },
    {
        "id": "version-bump-skipped",
        "description": "a versioned update writes history but does not bump version",
        "file": "chrononaut/versioning/recorder.py",
        "original": "        obj.version = version + 1",
        "replacement": "        obj.version = version",
        "tests": ["tests/versioning/test_recording.py"],
    },
    {
        "id": "hidden-cols-changed-dropped",
        "description": "a change of a hidden column is not listed in hidden_cols_changed",
        "file": "chrononaut/versioning/change_info.py",
        "original": '            info["hidden_cols_changed"] = sorted(hidden_changed)\n',
        "replacement": "            pass\n",
        "tests": ["tests/versioning/test_recording.py", "tests/versioning/test_change_info.py"],
    },
    {
        "id": "pending-info-not-consumed",
        "description": "append_change_info's info sticks to every later version, not the next",
        "file": "chrononaut/versioning/recorder.py",
        "original": "        _consume_pending(state)\n        obj.version = version + 1\n",
        "replacement": "        obj.version = version + 1\n",
        "tests": ["tests/versioning/test_change_info_context.py"],
    },
    {
        "id": "delete-history-skipped",
        "description": "deleting a record writes no history row of its last state",
        "file": "chrononaut/versioning/recorder.py",
        "original": (
            "        values[CHANGE_INFO] = self.builder.build(obj, state, deleted=True)\n"
            "        self.rows.add(info, state.mapper, values)\n"
        ),
        "replacement": (
            "        values[CHANGE_INFO] = self.builder.build(obj, state, deleted=True)\n"
        ),
        "tests": [
            "tests/versioning/test_recording_edge_cases.py",
            "tests/versioning/test_inheritance.py",
        ],
    },
    {
        "id": "strict-mode-skips-deletes",
        "description": "strict mode (require extra change info) lets deletes through",
        "file": "chrononaut/versioning/recorder.py",
        "original": (
            "        self.require_extra(obj, state)\n"
            "        values = _prior_values(obj, state, info)\n"
            "        values[VERSION] = _committed_version(obj, state)\n"
        ),
        "replacement": (
            "        values = _prior_values(obj, state, info)\n"
            "        values[VERSION] = _committed_version(obj, state)\n"
        ),
        "tests": [
            "tests/versioning/test_change_info_context.py",
            "tests/flask/test_extension.py",
        ],
    },
    {
        "id": "nonunique-numbering-repeats",
        "description": "a re-inserted primary key restarts at its last history version",
        "file": "chrononaut/versioning/recorder.py",
        "original": "obj.version = last[pk] + 1",
        "replacement": "obj.version = last[pk]",
        "tests": ["tests/versioning/test_options.py"],
    },
    {
        "id": "history-rows-mutable",
        "description": "history rows can be modified and deleted through the session",
        "file": "chrononaut/versioning/recorder.py",
        "original": "    _check_history_writes(session, writes)\n",
        "replacement": "",
        "tests": ["tests/versioning/test_suppression.py"],
    },
    {
        "id": "suppression-ignored",
        "description": "suppress_versioning() no longer stops flushed changes writing history",
        "file": "chrononaut/versioning/recorder.py",
        "original": "        suppressed = context.versioning_suppressed()",
        "replacement": "        suppressed = False",
        "tests": ["tests/versioning/test_suppression.py"],
    },
    {
        "id": "versions-before-exclusive",
        "description": "versions(before=...) excludes a version changed exactly at before",
        "file": "chrononaut/versioning/queries.py",
        "original": 'history_cls.changed <= sa.bindparam("chrononaut_before")',
        "replacement": 'history_cls.changed < sa.bindparam("chrononaut_before")',
        "tests": ["tests/versioning/test_queries.py"],
    },
    # --- versioning: bulk statements --------------------------------------------
    {
        "id": "bulk-suppression-ignored",
        "description": "bulk statements inside suppress_versioning() still write history",
        "file": "chrononaut/versioning/bulk.py",
        "original": "    if context.versioning_suppressed():\n        return\n",
        "replacement": "",
        "tests": ["tests/versioning/test_suppression.py"],
    },
    {
        "id": "bulk-hidden-cols-changed-dropped",
        "description": "a bulk UPDATE of a hidden column does not list it in hidden_cols_changed",
        "file": "chrononaut/versioning/bulk.py",
        "original": "change_info = builder.build(None, hidden_changed=sorted(hidden))",
        "replacement": "change_info = builder.build(None)",
        "tests": ["tests/versioning/test_bulk.py"],
    },
    {
        "id": "bulk-delete-not-marked-deleted",
        "description": "a bulk DELETE's history rows lack change_info['deleted']",
        "file": "chrononaut/versioning/bulk.py",
        "original": "change_info = builder.build(None, deleted=True)",
        "replacement": "change_info = builder.build(None)",
        "tests": ["tests/versioning/test_bulk.py"],
    },
    {
        "id": "bulk-version-not-bumped",
        "description": "a bulk UPDATE writes history but leaves version as it was",
        "file": "chrononaut/versioning/bulk.py",
        "original": "{VERSION: cls.version + 1}",
        "replacement": "{VERSION: cls.version}",
        "tests": ["tests/versioning/test_bulk.py"],
    },
    {
        "id": "bulk-update-not-limited",
        "description": "a bulk statement is not limited to the keys copied to history",
        "file": "chrononaut/versioning/bulk.py",
        "original": "limited = statement.where(_keyed(cls, info, matched))",
        "replacement": "limited = statement",
        "tests": ["tests/versioning/test_bulk_races.py", "tests/versioning/test_bulk.py"],
    },
    {
        "id": "bulk-rows-not-locked",
        "description": "a bulk statement copies rows to history without locking them (FOR UPDATE)",
        "file": "chrononaut/versioning/bulk.py",
        "original": "matched = _matched_keys(session, cls, info, statement, lock=True)",
        "replacement": "matched = _matched_keys(session, cls, info, statement, lock=False)",
        "tests": [
            "tests/versioning/test_bulk_races.py",
            "tests/versioning/test_bulk.py",
            "tests/versioning/test_bulk_edge_cases.py",
        ],
    },
    {
        "id": "bulk-unguarded",
        "description": "bulk statements skip the flush guard (others' lock() and leases)",
        "file": "chrononaut/versioning/bulk.py",
        "original": "guard.for_keys(session, mapper, matched) if guard is not None else None",
        "replacement": "None",
        "tests": ["tests/locking/test_guard_bulk.py"],
    },
    # --- versioning: the database guard (triggers) ------------------------------
    {
        "id": "db-guard-no-version-bump",
        "description": "a raw UPDATE writes history but does not bump version",
        "file": "chrononaut/versioning/database_guard_sql.py",
        "original": 'f"    NEW.{_q(version)} := OLD.{_q(version)} + 1;",',
        "replacement": 'f"    NEW.{_q(version)} := OLD.{_q(version)};",',
        "tests": [
            "tests/versioning/test_database_guard.py",
            "tests/versioning/test_database_guard_coverage.py",
        ],
    },
    {
        "id": "db-guard-copies-new-values",
        "description": "the trigger's history row holds the new values, not the old",
        "file": "chrononaut/versioning/database_guard_sql.py",
        "original": 'value = f"OLD.{_q(policy.tracked[source].name)}"',
        "replacement": 'value = f"NEW.{_q(policy.tracked[source].name)}"',
        "tests": [
            "tests/versioning/test_database_guard.py",
            "tests/versioning/test_database_guard_coverage.py",
        ],
    },
    {
        "id": "db-guard-hidden-change-ignored",
        "description": "a raw UPDATE of a hidden column only writes no version",
        "file": "chrononaut/versioning/database_guard_sql.py",
        "original": "        unchanged = f\"chrononaut_hidden = '{{}}' AND {unchanged}\"\n",
        "replacement": "        pass\n",
        "tests": [
            "tests/versioning/test_database_guard.py",
            "tests/versioning/test_database_guard_coverage.py",
        ],
    },
    {
        "id": "db-guard-deletion-not-marked",
        "description": "the trigger's deletion row lacks change_info['deleted']",
        "file": "chrononaut/versioning/database_guard_sql.py",
        "original": "pairs += \", 'deleted', true\"",
        "replacement": 'pairs += ""',
        "tests": [
            "tests/versioning/test_database_guard.py",
            "tests/versioning/test_database_guard_coverage.py",
        ],
    },
    {
        "id": "db-guard-orm-delete-conflicts",
        "description": "the deferred delete trigger collides with the ORM's deletion row",
        "file": "chrononaut/versioning/database_guard_sql.py",
        "original": 'tail = " ON CONFLICT DO NOTHING;" if on_conflict else ";"',
        "replacement": 'tail = ";"',
        "tests": [
            "tests/versioning/test_database_guard.py",
            "tests/versioning/test_database_guard_coverage.py",
        ],
    },
    {
        "id": "db-guard-suppression-ignored",
        "description": "the triggers ignore chrononaut.suppress (suppress_versioning())",
        "file": "chrononaut/versioning/database_guard_sql.py",
        "original": "f\"current_setting('{SUPPRESS_SETTING}', true) IS DISTINCT FROM 'on'\"",
        "replacement": '"true"',
        "tests": [
            "tests/versioning/test_database_guard.py",
            "tests/versioning/test_database_guard_coverage.py",
        ],
    },
    # --- locking: the version counter -------------------------------------------
    {
        "id": "version-counter-not-configured",
        "description": "version is not the mapper's version_id_col: UPDATEs skip the check",
        "file": "chrononaut/locking/optimistic.py",
        "original": "    mapper.version_id_col = mapper.local_table.c.version\n",
        "replacement": "",
        "tests": ["tests/locking/test_optimistic.py"],
    },
    {
        "id": "untracked-only-rowcount-unchecked",
        "description": "an untracked-only write to a deleted row succeeds silently",
        "file": "chrononaut/locking/optimistic.py",
        "original": (
            "        if result.rowcount != 1:\n"
            "            raise conflict_for("
            "session, type(obj), tuple(state.identity), obj.version)\n"
        ),
        "replacement": "",
        "tests": ["tests/locking/test_optimistic.py", "tests/locking/test_guard_paths.py"],
    },
    {
        "id": "conflict-skips-first-change",
        "description": "a conflict's changes leave out the first version written since the load",
        "file": "chrononaut/locking/optimistic.py",
        "original": "query.filter(history_cls.version >= base_version)",
        "replacement": "query.filter(history_cls.version > base_version)",
        "tests": ["tests/locking/test_optimistic.py"],
    },
    {
        "id": "apply-changes-ignores-overlap",
        "description": "apply_changes() merges a stale form even over columns others changed",
        "file": "chrononaut/locking/optimistic.py",
        "original": "overlap = tuple(sorted(set(changes) & touched))",
        "replacement": "overlap = ()",
        "tests": ["tests/locking/test_optimistic_forms.py"],
    },
    {
        "id": "retry-on-lock-error",
        "description": "retry_on_conflict() also retries RecordLockedError",
        "file": "chrononaut/locking/optimistic.py",
        "original": (
            "                except RecordLockedError:\n"
            "                    raise\n"
            "                except ConflictError as error:\n"
        ),
        "replacement": "                except (ConflictError, RecordLockedError) as error:\n",
        "tests": ["tests/locking/test_optimistic_forms.py"],
    },
    {
        "id": "etag-ignores-version",
        "description": "the ETag does not change with the version",
        "file": "chrononaut/locking/optimistic.py",
        "original": "return f'\"{etag_prefix(obj)}{obj.version}\"'",
        "replacement": "return f'\"{etag_prefix(obj)}0\"'",
        "tests": ["tests/flask/test_etag.py"],
    },
    {
        "id": "stale-flush-not-explained",
        "description": "a stale flush raises SQLAlchemy's StaleDataError, not ConflictError",
        "file": "chrononaut/session.py",
        "original": "conflict = optimistic.explain_stale_flush(self, error, deleting)",
        "replacement": "conflict = None",
        "tests": ["tests/locking/test_optimistic.py"],
    },
    # --- locking: keys and advisory locks ---------------------------------------
    {
        "id": "lock-key-python-hash",
        "description": "the advisory key comes from Python's hash(), which differs per process",
        "file": "chrononaut/locking/keys.py",
        "original": '    return int.from_bytes(digest, "big", signed=True)',
        "replacement": "    return hash(text)",
        "tests": ["tests/locking/test_keys.py"],
    },
    {
        "id": "locks-in-argument-order",
        "description": "lock(a, b) takes the locks in argument order, not sorted by key",
        "file": "chrononaut/locking/advisory.py",
        "original": "    ordered = sorted(locks)\n",
        "replacement": "    ordered = locks\n",
        "tests": ["tests/locking/test_advisory_processes.py"],
    },
    {
        "id": "shared-lock-exclusive",
        "description": "lock(shared=True) takes an exclusive lock",
        "file": "chrononaut/locking/advisory.py",
        "original": 'suffix = "_shared" if shared else ""',
        "replacement": 'suffix = ""',
        "tests": ["tests/locking/test_advisory.py", "tests/locking/test_advisory_processes.py"],
    },
    {
        "id": "nowait-keeps-partial-locks",
        "description": "a failed nowait/timeout lock() keeps the locks it took before failing",
        "file": "chrononaut/locking/advisory.py",
        "original": (
            "            _lock_and_refresh(session, unique, identities, locks, nowait, timeout)\n"
            "        except BaseException:\n"
            "            savepoint.undo()\n"
        ),
        "replacement": (
            "            _lock_and_refresh(session, unique, identities, locks, nowait, timeout)\n"
            "        except BaseException:\n"
            "            savepoint.release()\n"
        ),
        "tests": ["tests/locking/test_advisory.py", "tests/locking/test_advisory_processes.py"],
    },
    {
        "id": "lock-timeout-not-restored",
        "description": "lock(timeout=...) leaves its lock_timeout set for the transaction",
        "file": "chrononaut/locking/advisory.py",
        "original": (
            "    _execute(connection, \"SELECT set_config('lock_timeout', :v, true)\", "
            "v=previous)\n"
        ),
        "replacement": "",
        "tests": ["tests/locking/test_advisory.py", "tests/locking/test_advisory_processes.py"],
    },
    {
        "id": "lock-no-refresh",
        "description": "lock() does not refresh the records after taking their locks",
        "file": "chrononaut/locking/advisory.py",
        "original": "            _refresh(session, records)\n            return\n",
        "replacement": "            return\n",
        "tests": ["tests/locking/test_advisory.py"],
    },
    {
        "id": "lock-skips-writer-barrier",
        "description": "lock() does not wait for a write that passed the guard before the lock",
        "file": "chrononaut/locking/advisory.py",
        "original": "        if not busy:\n",
        "replacement": "        if True:  # whether a writer is in flight is ignored\n",
        "tests": [
            "tests/locking/test_advisory_processes.py",
            "tests/locking/test_advisory.py",
            "tests/locking/test_optimistic_processes.py",
        ],
    },
    {
        "id": "nested-lock-commits",
        "description": "every lock() block commits on leaving, nested ones too",
        "file": "chrononaut/locking/advisory.py",
        "original": "    outermost = lock_depth(session) == 0",
        "replacement": "    outermost = True",
        "tests": ["tests/locking/test_advisory.py"],
    },
    {
        "id": "is-locked-sees-own-lock",
        "description": "is_locked() is true for the session's own lock",
        "file": "chrononaut/locking/advisory.py",
        "original": '"AND pid IS DISTINCT FROM pg_backend_pid())"',
        "replacement": '")"',
        "tests": ["tests/locking/test_advisory.py"],
    },
    {
        "id": "commit-inside-lock-allowed",
        "description": "session.commit() inside a lock() block is no longer refused",
        "file": "chrononaut/session.py",
        "original": 'advisory.refuse_inside_lock(self, "commit")',
        "replacement": "pass",
        "tests": ["tests/locking/test_advisory.py"],
    },
    {
        "id": "rollback-inside-lock-allowed",
        "description": "session.rollback() inside a lock() block is no longer refused",
        "file": "chrononaut/session.py",
        "original": 'advisory.refuse_inside_lock(self, "rollback")',
        "replacement": "pass",
        "tests": ["tests/locking/test_advisory.py"],
    },
    # --- locking: the flush guard -----------------------------------------------
    {
        "id": "guard-lease-expiry-ge",
        "description": "the guard treats a lease expiring right now as still held (> became >=)",
        "file": "chrononaut/locking/guard.py",
        "original": "AND expires_at > statement_timestamp() AND owner",
        "replacement": "AND expires_at >= statement_timestamp() AND owner",
        "tests": ["tests/locking/test_lease_matching.py", "tests/locking/test_leases.py"],
    },
    {
        "id": "guard-refuses-lease-owner",
        "description": "the guard refuses the lease owner's own writes",
        "file": "chrononaut/locking/guard.py",
        "original": " AND owner IS DISTINCT FROM :chrononaut_actor",
        "replacement": "",
        "tests": ["tests/locking/test_leases.py"],
    },
    {
        "id": "guard-lease-matched-by-key-only",
        "description": "the guard matches a lease row to a record by key, ignoring its table",
        "file": "chrononaut/locking/guard.py",
        "original": "if (t.table, t.record_key) == (name, record_key)",
        "replacement": "if t.record_key == record_key",
        "tests": ["tests/locking/test_lease_matching.py", "tests/locking/test_leases.py"],
    },
    {
        "id": "held-keys-not-per-transaction",
        "description": "keys taken by lock() count as held in the session's later transactions",
        "file": "chrononaut/locking/advisory.py",
        "original": "return keys_ if transaction is session.get_transaction() else frozenset()",
        "replacement": "return keys_",
        "tests": [
            "tests/locking/test_guard_coverage.py",
            "tests/locking/test_guard_paths.py",
            "tests/locking/test_guard.py",
            "tests/locking/test_advisory.py",
        ],
    },
    {
        "id": "guard-probes-own-locks",
        "description": "the guard probes the keys its own lock() holds",
        "file": "chrononaut/locking/guard.py",
        "original": "unique = {t.key: t for t in group if t.key not in held}",
        "replacement": "unique = {t.key: t for t in group}",
        "tests": [
            "tests/locking/test_guard_coverage.py",
            "tests/locking/test_guard_paths.py",
            "tests/locking/test_guard.py",
            "tests/locking/test_advisory_processes.py",
        ],
    },
    {
        "id": "writer-does-not-mark-table",
        "description": "a guarded write does not mark its table, so lock() skips its barrier",
        "file": "chrononaut/locking/guard.py",
        "original": "SELECT CASE WHEN pg_advisory_xact_lock_shared(k.table_key)::text <> '' ",
        "replacement": "SELECT CASE WHEN false ",
        "tests": [
            "tests/locking/test_advisory_processes.py",
            "tests/locking/test_guard_paths.py",
            "tests/locking/test_optimistic_processes.py",
        ],
    },
    {
        "id": "guard-other-databases",
        "description": "the guard's lock-table read (large flushes) counts other databases' locks",
        "file": "chrononaut/locking/guard.py",
        "original": (
            '    "AND l.database = (SELECT oid FROM pg_database '
            'WHERE datname = current_database()) "\n'
            '    "AND (((l.classid'
        ),
        "replacement": '    "AND (((l.classid',
        "tests": [
            "tests/locking/test_guard_paths.py",
            "tests/locking/test_guard.py",
            "tests/locking/test_guard_coverage.py",
        ],
    },
    {
        "id": "lock-wait-ignored",
        "description": "with CHRONONAUT_LOCK_WAIT a flush does not wait for lock() holders",
        "file": "chrononaut/locking/guard.py",
        "original": "    if targets:\n        wait_for_locks(session, targets, lock_wait)",
        "replacement": "    pass",
        "tests": ["tests/locking/test_guard.py", "tests/flask/test_leases_flask.py"],
    },
    {
        "id": "guard-skips-deletes",
        "description": "a flushed DELETE is not checked by the guard (nor by the version counter)",
        "file": "chrononaut/versioning/recorder.py",
        "original": "        self.plan.write(obj, state, values[VERSION])\n",
        "replacement": "",
        "tests": [
            "tests/locking/test_guard.py",
            "tests/locking/test_optimistic.py",
            "tests/test_session.py",
        ],
    },
    {
        "id": "suppressed-writes-unguarded",
        "description": "writes under suppress_versioning() skip the flush guard",
        "file": "chrononaut/versioning/recorder.py",
        "original": (
            '        """Under suppression: note the versioned records written, for the guard."""\n'
        ),
        "replacement": (
            '        """Under suppression: note the versioned records written, for the guard."""\n'
            "        return\n"
        ),
        "tests": ["tests/locking/test_guard_coverage.py", "tests/versioning/test_suppression.py"],
    },
    {
        "id": "listen-instance-unguarded",
        "description": "chrononaut.listen(session_instance) does not wire the locking listeners",
        "file": "chrononaut/session.py",
        "original": "    locking_listeners.listen(target)\n",
        "replacement": (
            "    if not isinstance(target, Session):\n        locking_listeners.listen(target)\n"
        ),
        "tests": ["tests/test_session.py"],
    },
    {
        "id": "remove-keeps-guard",
        "description": "chrononaut.remove() leaves the locking listeners and the guard in place",
        "file": "chrononaut/session.py",
        "original": "    locking_listeners.remove(target)\n",
        "replacement": "",
        "tests": ["tests/test_session.py"],
    },
    # --- locking: leases --------------------------------------------------------
    {
        "id": "acquire-lease-expiry-ge",
        "description": "acquire_lease() treats a lease expiring right now as still held",
        "file": "chrononaut/locking/leases.py",
        "original": "           OR lease.expires_at <= statement_timestamp()",
        "replacement": "           OR lease.expires_at < statement_timestamp()",
        "tests": ["tests/locking/test_lease_matching.py", "tests/locking/test_leases.py"],
    },
    {
        "id": "current-lease-expiry-ge",
        "description": "record.lease reports a lease expiring right now as held",
        "file": "chrononaut/locking/leases.py",
        "original": "table.c.expires_at > sa.func.statement_timestamp(),",
        "replacement": "table.c.expires_at >= sa.func.statement_timestamp(),",
        "tests": ["tests/locking/test_lease_matching.py", "tests/locking/test_leases.py"],
    },
    {
        "id": "current-lease-by-key-only",
        "description": "record.lease finds a lease of another table with the same record key",
        "file": "chrononaut/locking/leases.py",
        "original": "                table.c.table_name == name,\n"
        "                table.c.record_key == key,\n",
        "replacement": "                table.c.record_key == key,\n",
        "tests": ["tests/locking/test_lease_matching.py", "tests/locking/test_leases.py"],
    },
    {
        "id": "acquire-lease-previous-expiry-ge",
        "description": "acquire_lease() records taking over a lease expiring right now as a break",
        "file": "chrononaut/locking/leases.py",
        "original": "              AND expires_at > statement_timestamp()\n",
        "replacement": "              AND expires_at >= statement_timestamp()\n",
        "tests": ["tests/locking/test_lease_matching.py", "tests/locking/test_leases.py"],
    },
    {
        "id": "release-lease-expiry-ge",
        "description": "release_lease() needs force=True for another's lease expiring right now",
        "file": "chrononaut/locking/leases.py",
        "original": "table.c.expires_at <= sa.func.statement_timestamp(),",
        "replacement": "table.c.expires_at < sa.func.statement_timestamp(),",
        "tests": ["tests/locking/test_lease_matching.py", "tests/locking/test_leases.py"],
    },
    {
        "id": "release-lease-by-key-only",
        "description": "release_lease() deletes the leases of every table with the record's key",
        "file": "chrononaut/locking/leases.py",
        "original": (
            "            table.c.table_name == name,\n            table.c.record_key == key,\n"
        ),
        "replacement": "            table.c.record_key == key,\n",
        "tests": ["tests/locking/test_lease_matching.py", "tests/locking/test_leases.py"],
    },
    {
        "id": "release-lease-by-anyone",
        "description": "release_lease() by someone else succeeds without force=True",
        "file": "chrononaut/locking/leases.py",
        "original": "                sa.true() if force else sa.false(),\n",
        "replacement": "                sa.true(),\n",
        "tests": ["tests/locking/test_leases.py"],
    },
    {
        "id": "rolled-back-break-recorded",
        "description": "a rolled-back forced lease break is still recorded in history",
        "file": "chrononaut/locking/leases.py",
        "original": '            pending.pop("lease_broken", None)\n',
        "replacement": "            pass\n",
        "tests": ["tests/locking/test_leases.py"],
    },
    # --- Flask glue -------------------------------------------------------------
    {
        "id": "if-match-accepts-any",
        "description": "check_if_match() accepts any If-Match header",
        "file": "chrononaut/http.py",
        "original": "if if_match.contains(unquote_etag(current)[0]):",
        "replacement": "if if_match:",
        "tests": ["tests/flask/test_etag.py"],
    },
    {
        "id": "locked-answers-409",
        "description": "RecordLockedError is answered with 409 instead of 423",
        "file": "chrononaut/http.py",
        "original": "_respond(error, 423,",
        "replacement": "_respond(error, 409,",
        "tests": ["tests/flask/test_error_handlers.py"],
    },
    {
        "id": "remote-addr-dropped",
        "description": "change_info no longer records the request's remote address",
        "file": "chrononaut/extension.py",
        "original": "return request.remote_addr if has_request_context() else None",
        "replacement": "return None",
        "tests": ["tests/flask/test_extension.py"],
    },
    {
        "id": "config-lock-wait-ignored",
        "description": "CHRONONAUT_LOCK_WAIT is not read from the app config",
        "file": "chrononaut/extension.py",
        "original": 'lock_wait=config.setdefault("CHRONONAUT_LOCK_WAIT", 0),',
        "replacement": "lock_wait=0,",
        "tests": ["tests/flask/test_leases_flask.py"],
    },
    # --- stacks: SQLAlchemy 2.0/2.1, psycopg2/psycopg 3/asyncpg, without Flask ---
    {
        "id": "flask-glue-imported-eagerly",
        "description": "import chrononaut imports the Flask extension again",
        "file": "chrononaut/__init__.py",
        "original": "if TYPE_CHECKING:\n"
        "    from .extension import VersionedSQLAlchemy as VersionedSQLAlchemy\n",
        "replacement": "from .extension import VersionedSQLAlchemy as VersionedSQLAlchemy\n\n"
        "if TYPE_CHECKING:\n",
        "tests": ["tests/test_without_flask.py"],
    },
    {
        "id": "scoped-session-made-before-listen",
        "description": "listen(scoped_session) leaves the session it already made unversioned",
        "file": "chrononaut/session.py",
        "original": "                listen(made, settings=settings)\n",
        "replacement": "                pass\n",
        "tests": ["tests/test_session.py"],
    },
]
