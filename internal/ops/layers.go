package ops

import (
	"crypto/sha256"
	"encoding/hex"

	"github.com/relctl/relctl/internal/fleet"
)

// inventoryDigest is what a saved plan records of the inventory it was
// built from: the sha256 of the file, or, when several -f files are merged,
// of every file's sha256 in order, so that a change to any layer makes the
// plan stale. (The environment is in the plan itself, and apply --plan
// rebuilds and compares it.)
func inventoryDigest(inv *fleet.Inventory) (string, error) {
	if len(inv.Files) <= 1 {
		return InventoryDigest(inv.File)
	}
	h := sha256.New()
	for _, f := range inv.Files {
		d, err := InventoryDigest(f)
		if err != nil {
			return "", err
		}
		h.Write([]byte(f + "\x00" + d + "\n"))
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
