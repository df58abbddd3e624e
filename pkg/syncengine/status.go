package syncengine

// Status is the sync status the app shows: whether the server is reachable,
// whether a sync is running, how many mutations wait in the outbox, when the
// last sync succeeded (Unix ms, 0 if never) and the last error ("" if none).
type Status struct {
	Online     bool   `json:"online"`
	Syncing    bool   `json:"syncing"`
	Pending    int    `json:"pending"`
	LastSyncAt int64  `json:"lastSyncAt"`
	Error      string `json:"error"`
}
