package syncengine

import (
	"context"
	"testing"
)

// FuzzImportDump: any bytes given to import either fail to decode with
// CodeValidation, or import without a panic, answering with counts or a
// typed error; whatever was imported passes integrity_check, and importing
// the same dump again changes nothing (import is idempotent).
func FuzzImportDump(f *testing.F) {
	te := openFuzzEngine(f)
	ctx := context.Background()
	te.put("todos", Record{"id": "seed", "title": "seed", "rank": int64(1)})
	dump, err := te.Export(ctx)
	if err != nil {
		f.Fatal(err)
	}
	raw, err := marshalJSON(dump)
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte(raw))
	f.Add([]byte(`{"format":"` + DumpFormat + `","version":1,"records":[]}`))
	f.Add([]byte(`{"format":"` + DumpFormat + `","version":1,"records":[{"collection":"todos","id":"x","fields":{"_deleted":{"value":false,"hlc":"0001700000000-000001-n1","origin":"user"},"title":{"value":"<x>","hlc":"0001700000000-000001-n1","origin":"user"}}}]}`))
	f.Add([]byte(`{"format":"` + DumpFormat + `","version":2,"records":[]}`))
	f.Add([]byte(`{"format":"` + DumpFormat + `","version":1,"records":[{"collection":"nope","id":"x","fields":{}}]} trailing`))
	f.Fuzz(func(t *testing.T, input []byte) {
		d, err := DecodeDump(input)
		if err != nil {
			if CodeOf(err) != CodeValidation {
				t.Fatalf("DecodeDump error %v has code %s, want VALIDATION", err, CodeOf(err))
			}
			return
		}
		if _, err := te.Import(ctx, d); err != nil {
			if c := CodeOf(err); c != CodeValidation && c != CodeSchema {
				t.Fatalf("Import error %v has code %s", err, c)
			}
			return
		}
		again, err := te.Import(ctx, d)
		if err != nil || again.Inserted != 0 || again.Updated != 0 {
			t.Fatalf("importing the same dump again = %+v, %v; want nothing inserted or updated", again, err)
		}
		if res, err := te.IntegrityCheck(ctx); err != nil || res != "ok" {
			t.Fatalf("integrity_check after import = %q, %v", res, err)
		}
	})
}
