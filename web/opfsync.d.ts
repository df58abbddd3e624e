// Type declarations for opfsync.js, the JS client of opfsync (an
// offline-first store: SQLite on OPFS in a Web Worker, synced with
// opfsync-server). The contract is the "Public JS API" of DESIGN.md.

/** The code of every opfsync rejection. */
export type ErrorCode = 'VALIDATION' | 'NOT_FOUND' | 'SCHEMA' | 'STORAGE' | 'LOCKED' | 'CLOSED' | 'NETWORK' | 'INTERNAL';

/** Every code, in a frozen array. */
export const ERROR_CODES: readonly ErrorCode[];

/** The Error every opfsync call rejects (or, for watch/on/status, throws) with. */
export class OpfsyncError extends Error {
  constructor(code: ErrorCode, message: string);
  readonly name: 'OpfsyncError';
  /** What kind of failure; the message says what to do. */
  readonly code: ErrorCode;
}

/**
 * A JSON value: what a field can hold, and what every argument that carries
 * data (records, fields, params, dumps, schemas) must be made of, so that
 * what get() returns is exactly what was written. Refused with VALIDATION
 * naming the path (e.g. `put.record.tags[2].x`): functions, symbols (values
 * and enumerable symbol keys), undefined (use null) and holes of sparse
 * arrays, NaN and ±Infinity, BigInt, cycles, strings or keys with lone
 * UTF-16 surrogates, every object that is not a plain object or an array
 * (Date, Map, Set, typed arrays, boxed primitives, class instances), plain
 * objects with a toJSON method, values whose getter or Proxy trap throws,
 * and nesting deeper than 256 (the engine refuses field values nested
 * deeper than 32). -0 is stored as 0.
 */
export type JSONValue = string | number | boolean | null | JSONValue[] | { [key: string]: JSONValue };

/** A field's declared type. `integer` is limited to ±(2^53−1). */
export type FieldType = 'text' | 'integer' | 'real' | 'boolean' | 'json';

export interface CollectionSchema {
  /** The declared fields; each is a column of the collection's SQL table. */
  fields: { [field: string]: FieldType };
  /** Indexes, each a list of declared field names, e.g. [['done', 'rank']]. */
  indexes?: string[][];
  /** A record is written once: a later put/patch of the id is refused with VALIDATION. */
  immutable?: boolean;
  /** Accept fields that are not declared (stored as JSON). */
  extraFields?: boolean;
}

/** A destructive schema change, named explicitly with the version that makes it. */
export type SchemaUpgrade =
  | { version: number; op: 'dropCollection'; collection: string }
  | { version: number; op: 'dropField'; collection: string; field: string }
  | { version: number; op: 'changeType'; collection: string; field: string }
  | { version: number; op: 'dropExtraFields'; collection: string };

export interface Schema {
  version: number;
  collections: { [collection: string]: CollectionSchema };
  upgrades?: SchemaUpgrade[];
}

/** A record: an id and its fields. */
export interface StoredRecord {
  id: string;
  [field: string]: JSONValue;
}

/** One legacy localStorage key to move into the store at open. */
export interface LocalStorageMigration {
  /** The localStorage key. It is removed only after its records were committed. */
  key: string;
  /** The collection the records go to: one declared in schema.collections (VALIDATION otherwise). */
  collection: string;
  /**
   * Turns the key's value into records (each with an `id`). If it throws
   * (e.g. malformed JSON), the key is left untouched and reported.
   */
  map: (value: string) => Array<Record<string, unknown>> | Promise<Array<Record<string, unknown>>>;
  /**
   * 'upsert' (default): insert missing records, fill only the unwritten
   * fields of live ones. 'patch': only fill unwritten fields of live
   * records; missing or deleted ones are skipped.
   */
  mode?: 'upsert' | 'patch';
}

export interface OpenOptions {
  /** The database name (1 to 64 letters, digits, '_', '.', '-'). */
  name: string;
  schema: Schema;
  /** Sync with an opfsync-server; omit for a local-only store. */
  sync?: {
    /** The server's origin, e.g. 'https://sync.example.com'; the client adds /sync/push, /sync/pull, /sync/events. */
    url: string;
    /** The bearer token. */
    token: string;
  };
  migrateLocalStorage?: LocalStorageMigration[];
  /**
   * 'opfs' (default): persisted in the Origin Private File System, shared by
   * the tabs of the origin (one leader tab runs the engine). Where the
   * browser has no OPFS sync access handles (older WebKit, some private
   * modes) the store falls back to IndexedDB, with the same API and
   * guarantees; status().storage says which one it uses.
   * 'indexeddb': persisted in IndexedDB even where OPFS exists.
   * 'memory': nothing persists; private to this store instance (no tab
   * sharing). Never chosen as a fallback.
   */
  storage?: 'opfs' | 'indexeddb' | 'memory';
}

export interface MigrationError {
  key: string;
  /** The item's id, when the failure is about one item. */
  id?: string;
  reason: string;
}

export interface MigrationReport {
  imported: number;
  skipped: number;
  errors: MigrationError[];
}

export interface Status {
  /** False after a request to the server got no answer, or while the browser is offline. */
  online: boolean;
  syncing: boolean;
  /** Local mutations not yet acknowledged by the server. */
  pending: number;
  /** When the last successful sync ended (ms since the epoch; 0 before the first). */
  lastSyncAt: number;
  /** The last sync error, '' when the last attempt succeeded. */
  error: string;
  /** Whether this tab owns the database (the others send it their requests). */
  leader: boolean;
  /** The storage the engine opened: 'indexeddb' when 'opfs' fell back. */
  storage: 'opfs' | 'indexeddb' | 'memory';
}

export interface ChangeEvent {
  /** The tables (collections, and engine tables such as 'pending') the commit touched. */
  tables: string[];
  /** The mutationVersion after the commit. */
  version: number;
  /** Set when the commit queued local mutations for the server. */
  queued?: boolean;
}

export interface ConflictEvent {
  collection: string;
  id: string;
  field: string;
  /** The user's value that lost. */
  local: JSONValue;
  /** The value that won. */
  remote: JSONValue;
}

export interface RejectedEvent {
  collection: string;
  id: string;
  mutationId: string;
  code: string;
  message: string;
}

export interface EventMap {
  change: ChangeEvent;
  conflict: ConflictEvent;
  rejected: RejectedEvent;
  status: Status;
}

export interface WriteOptions {
  /** Who made the write (default 'user'); conflicts are reported only for 'user' writes. */
  origin?: 'user' | 'agent' | 'system';
}

export interface WriteResult {
  /** The ids of the mutations the write queued for the server. */
  mutationIds: string[];
  /** The mutationVersion after the write. */
  version: number;
}

export type Write =
  | { op: 'put'; collection: string; id: string; fields: Record<string, unknown>; origin?: WriteOptions['origin'] }
  | { op: 'patch'; collection: string; id: string; fields: Record<string, unknown>; origin?: WriteOptions['origin'] }
  | { op: 'delete'; collection: string; id: string; origin?: WriteOptions['origin'] };

/** A JSON dump: every record with its field stamps and tombstones. Pass it to import(). */
export type Dump = { [key: string]: JSONValue };

export interface ImportResult {
  inserted: number;
  updated: number;
  skipped: number;
}

/** One outbox entry, as inspect() shows it. */
export interface PendingMutation {
  /** The outbox order: mutations reach the server in seq order. */
  seq: number;
  mutationId: string;
  collection: string;
  id: string;
  op: 'put' | 'patch' | 'delete';
  origin: 'user' | 'agent' | 'system' | 'migration';
  /** The mutation's hybrid-logical-clock stamp. */
  hlc: string;
  /** How many times it was sent without an answer that settled it. */
  attempts: number;
  /** Why the last attempt failed ('' if none did). */
  lastError: string;
}

/** The persisted pull state. */
export interface PullState {
  state: 'Idle' | 'FetchingFirstPage' | 'FetchingNextPage' | 'Error';
  error: string;
  /** The server's cursor after the last applied page ('' before the first). */
  cursor: string;
  /** Bumped by a full resync; a page answering an older epoch is discarded. */
  epoch: number;
  /** Whether the first full pull has completed. */
  hydrated: boolean;
}

/** What inspect() returns. */
export interface Inspection {
  /** This database's stable client id (the node of its clock stamps). */
  clientId: string;
  /** The mutationVersion: bumped by every local mutation. */
  version: number;
  /** SQLite's journal mode ('wal' on OPFS and IndexedDB, 'memory' for storage 'memory'). */
  journalMode: string;
  /** The app schema's version, and the engine's own schema version. */
  schemaVersion: number;
  engineSchema: number;
  /** Live (not deleted) records per declared collection. */
  collections: { [collection: string]: number };
  /** Mutations in the outbox (all of them, not just those listed). */
  pendingCount: number;
  pending: PendingMutation[];
  pull: PullState;
  /** localStorage keys already imported, with their marker (JSON: {at, imported, skipped}). */
  migrations: { [key: string]: string };
}

export type SQLParam = string | number | boolean | null;

/**
 * An open store. Every method:
 * - must be called on the store (`store.put(…)`); a detached method
 *   (`const {put} = store; put(…)`) fails with VALIDATION;
 * - fails with CLOSED after close() (except close itself), whatever its
 *   arguments;
 * - refuses arguments past its signature with VALIDATION (a trailing
 *   undefined counts as not given): `query(sql, a, b)` is not `query(sql, [a, b])`;
 * - refuses arguments of the wrong type, unknown option keys and values that
 *   are not JSON (see JSONValue) with VALIDATION, naming the argument, and
 *   writes nothing.
 * Methods that return a Promise reject (they never throw); watch, on and
 * status throw. Unknown collections are refused by the engine with
 * VALIDATION (the leader tab's schema is the one that counts).
 */
export interface Store {
  /** What the localStorage migration at open did (all zero / empty when there was nothing to migrate). */
  readonly migrationReport: MigrationReport;

  /** Insert or replace a record (declared fields it omits become null); resolves once durable locally. */
  put(collection: string, record: { id: string; [field: string]: unknown }, options?: WriteOptions): Promise<WriteResult>;
  /** Set some fields of a live record (NOT_FOUND otherwise); resolves once durable locally. */
  patch(collection: string, id: string, fields: Record<string, unknown>, options?: WriteOptions): Promise<WriteResult>;
  /** Delete a record (a tombstone that syncs; deleting a missing id succeeds); resolves once durable locally. */
  delete(collection: string, id: string, options?: WriteOptions): Promise<WriteResult>;
  /** Several writes in one transaction: all or nothing. */
  apply(writes: Write[]): Promise<WriteResult>;
  /** The record, or null when it is missing or deleted. */
  get<T extends StoredRecord = StoredRecord>(collection: string, id: string): Promise<T | null>;
  /** One read-only SQL statement over the collections' tables; rows as plain objects keyed by column. */
  query<T = Record<string, JSONValue>>(sql: string, params?: SQLParam[] | null): Promise<T[]>;
  /**
   * A live query: cb gets the rows at once, then after every commit that
   * touches a table the query reads (never a result older than one already
   * delivered). Returns the unsubscribe function. Throws OpfsyncError
   * (VALIDATION, CLOSED) synchronously on bad arguments.
   */
  watch<T = Record<string, JSONValue>>(sql: string, params: SQLParam[] | null, cb: (rows: T[]) => void, onError?: (err: OpfsyncError) => void): () => void;
  watch<T = Record<string, JSONValue>>(sql: string, cb: (rows: T[]) => void): () => void;
  /** Subscribe to an event; returns the unsubscribe function. Throws OpfsyncError (VALIDATION, CLOSED) synchronously. */
  on<K extends keyof EventMap>(event: K, handler: (data: EventMap[K]) => void): () => void;
  /** The last known status, synchronously. Throws OpfsyncError CLOSED after close(). */
  status(): Status;
  /** Push then pull now; rejects with NETWORK when the server cannot be reached (the changes stay queued). */
  sync(): Promise<void>;
  export(): Promise<Dump>;
  /** Merge a dump by id with field-level last-writer-wins; re-importing the same dump skips everything. */
  import(dump: Dump): Promise<ImportResult>;
  /** SQLite's PRAGMA integrity_check: 'ok' when the database is sound. */
  integrityCheck(): Promise<string>;
  /**
   * The engine's state, for an inspector panel or a bug report: who this
   * client is, live records per collection, the outbox (oldest first, at most
   * `limit` entries, default 100; `pendingCount` is the full count), the pull
   * state and the localStorage migration markers. Works from any tab.
   */
  inspect(options?: { limit?: number }): Promise<Inspection>;
  /**
   * Close the store (another tab takes over the database); later calls
   * reject with CLOSED (status, watch and on throw it). Resolves once the
   * database is free for another store or deleteStore. Closing twice is
   * fine; unsubscribe functions stay callable (no-ops).
   */
  close(): Promise<void>;
}

/**
 * Open (creating if needed) a store. Bad options reject with VALIDATION
 * naming the option (a schema the engine refuses: SCHEMA). Resolves once the schema is applied and
 * the localStorage migration is done (see store.migrationReport).
 */
export function openStore(options: OpenOptions): Promise<Store>;

/**
 * Delete the store `name` from this origin: its database in OPFS or
 * IndexedDB, every record and the outbox — writes not synced yet are lost
 * (check status().pending first if that matters, e.g. before a sign-out).
 * Resolves once the data is gone (also when there was none); rejects with
 * LOCKED while a store of that name is open in this or another tab (close
 * it there first), with VALIDATION for a bad name. A store opened after it
 * starts empty.
 */
export function deleteStore(name: string): Promise<void>;
