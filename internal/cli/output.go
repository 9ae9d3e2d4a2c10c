package cli

import (
	"golang.org/x/term"

	"github.com/relctl/relctl/internal/view"
)

// printTable writes t to the command's output: aligned, with the last
// column wrapped to the terminal's width, on a terminal; tab-separated
// fields under a header line on a pipe, a file, or with --plain.
func printTable(ios *IO, t view.Table, plain bool) error {
	tty := !plain && isTerminal(ios.Out)
	if tty {
		if x, ok := ios.Out.(interface{ Fd() uintptr }); ok {
			if w, _, err := term.GetSize(int(x.Fd())); err == nil {
				t.Width = w
			}
		}
	}
	return t.Write(ios.Out, tty)
}
