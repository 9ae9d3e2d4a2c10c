package tui

import (
	"charm.land/bubbles/v2/help"
	"charm.land/lipgloss/v2"
)

// styles are every style the TUI uses, built once. Colours are the 16 ANSI
// ones, so they follow the terminal's theme; the renderer degrades them to
// the terminal's colour profile and drops them under NO_COLOR, so nothing
// is said by colour alone.
type styles struct {
	header     lipgloss.Style
	title      lipgloss.Style
	dim        lipgloss.Style
	bold       lipgloss.Style
	ok         lipgloss.Style
	warn       lipgloss.Style
	bad        lipgloss.Style
	badStrong  lipgloss.Style
	active     lipgloss.Style
	selected   lipgloss.Style
	colHead    lipgloss.Style
	pnr        lipgloss.Style
	notice     lipgloss.Style
	banner     lipgloss.Style // EMERGENCY DOWNGRADE
	frame      lipgloss.Style // red border around the emergency session
	dialog     lipgloss.Style
	dialogRisk lipgloss.Style
	barFull    lipgloss.Style
	barEmpty   lipgloss.Style
	help       help.Styles
}

func newStyles() styles {
	s := styles{
		header:     lipgloss.NewStyle().Bold(true),
		title:      lipgloss.NewStyle().Bold(true).Foreground(lipgloss.Cyan),
		dim:        lipgloss.NewStyle().Foreground(lipgloss.BrightBlack),
		bold:       lipgloss.NewStyle().Bold(true),
		ok:         lipgloss.NewStyle().Foreground(lipgloss.Green),
		warn:       lipgloss.NewStyle().Foreground(lipgloss.Yellow),
		bad:        lipgloss.NewStyle().Foreground(lipgloss.Red),
		badStrong:  lipgloss.NewStyle().Foreground(lipgloss.Red).Bold(true),
		active:     lipgloss.NewStyle().Foreground(lipgloss.Cyan),
		selected:   lipgloss.NewStyle().Reverse(true),
		colHead:    lipgloss.NewStyle().Bold(true).Underline(true),
		pnr:        lipgloss.NewStyle().Foreground(lipgloss.Red).Bold(true),
		notice:     lipgloss.NewStyle().Foreground(lipgloss.Yellow).Bold(true),
		banner:     lipgloss.NewStyle().Bold(true).Foreground(lipgloss.BrightWhite).Background(lipgloss.Red),
		frame:      lipgloss.NewStyle().Border(lipgloss.ThickBorder()).BorderForeground(lipgloss.Red),
		dialog:     lipgloss.NewStyle().Border(lipgloss.RoundedBorder()).BorderForeground(lipgloss.Cyan).Padding(0, 1),
		dialogRisk: lipgloss.NewStyle().Border(lipgloss.DoubleBorder()).BorderForeground(lipgloss.Red).Padding(0, 1),
		barFull:    lipgloss.NewStyle().Foreground(lipgloss.Green),
		barEmpty:   lipgloss.NewStyle().Foreground(lipgloss.BrightBlack),
	}
	s.help = help.Styles{
		ShortKey:       lipgloss.NewStyle().Bold(true),
		ShortDesc:      lipgloss.NewStyle().Foreground(lipgloss.BrightBlack),
		ShortSeparator: lipgloss.NewStyle().Foreground(lipgloss.BrightBlack),
		Ellipsis:       lipgloss.NewStyle().Foreground(lipgloss.BrightBlack),
		FullKey:        lipgloss.NewStyle().Bold(true),
		FullDesc:       lipgloss.NewStyle().Foreground(lipgloss.BrightBlack),
		FullSeparator:  lipgloss.NewStyle().Foreground(lipgloss.BrightBlack),
	}
	return s
}
