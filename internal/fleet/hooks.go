package fleet

import (
	"fmt"
	"reflect"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// DefaultHookTimeout bounds a hook that gives no timeout of its own when
// hooks.timeout is left out.
const DefaultHookTimeout = 30 * time.Second

// Hook names: the points of a run where hooks run (the keys of hooks:).
const (
	HookBeforeRun   = "before_run"
	HookAfterCanary = "after_canary"
	HookAfterRun    = "after_run"
	HookOnFailure   = "on_failure"
	HookOnRollback  = "on_rollback"
)

// HookNames are the hook points, in the order a run reaches them.
var HookNames = []string{HookBeforeRun, HookAfterCanary, HookOnFailure, HookOnRollback, HookAfterRun}

// Hooks are local commands run on the operator's machine (never on a
// host) at points of a run, each with the run's JSON document on stdin and
// RELCTL_* variables (package hooks runs them; docs/hooks.md documents
// them). A failing before_run hook stops the run before the lock is taken;
// the others are notifications: they never change a run's outcome.
type Hooks struct {
	// Timeout bounds each hook that gives no timeout of its own (default
	// DefaultHookTimeout).
	Timeout     time.Duration `yaml:"timeout"`
	BeforeRun   []Hook        `yaml:"before_run"`
	AfterCanary []Hook        `yaml:"after_canary"`
	AfterRun    []Hook        `yaml:"after_run"`
	OnFailure   []Hook        `yaml:"on_failure"`
	OnRollback  []Hook        `yaml:"on_rollback"`
}

// Hook is one command, written as a string or as {command, timeout}. It
// runs with sh -c; no inventory or run value is ever put into its text:
// they reach it as environment variables and on stdin.
type Hook struct {
	Command string        `yaml:"command"`
	Timeout time.Duration `yaml:"timeout"` // 0: hooks.timeout
}

// UnmarshalYAML implements yaml.Unmarshaler: a string is the command.
func (h *Hook) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		*h = Hook{Command: n.Value}
		return nil
	}
	type plain Hook
	var p plain
	if err := n.Decode(&p); err != nil {
		return err
	}
	*h = Hook(p)
	return nil
}

// List returns the hooks of point name (one of HookNames), each with its
// timeout filled in, or nil.
func (h Hooks) List(name string) []Hook {
	l := h.raw(name)
	out := make([]Hook, len(l))
	for i, x := range l {
		if x.Timeout == 0 {
			x.Timeout = h.Timeout
		}
		if x.Timeout == 0 {
			x.Timeout = DefaultHookTimeout
		}
		out[i] = x
	}
	return out
}

// raw is the hooks of point name as the inventory gives them.
func (h Hooks) raw(name string) []Hook {
	var l []Hook
	switch name {
	case HookBeforeRun:
		l = h.BeforeRun
	case HookAfterCanary:
		l = h.AfterCanary
	case HookAfterRun:
		l = h.AfterRun
	case HookOnFailure:
		l = h.OnFailure
	case HookOnRollback:
		l = h.OnRollback
	}
	return l
}

// Any reports whether any hook is configured.
func (h Hooks) Any() bool {
	for _, n := range HookNames {
		if len(h.List(n)) > 0 {
			return true
		}
	}
	return false
}

var hookType = reflect.TypeOf(Hook{})

func defaultHooks(h *Hooks) {
	if h.Timeout == 0 {
		h.Timeout = DefaultHookTimeout
	}
}

func (l *loader) validateHooks(inv *Inventory) {
	if inv.Hooks.Timeout < 0 {
		l.at("hooks.timeout", "timeout must be positive")
	}
	for _, name := range HookNames {
		for i, h := range inv.Hooks.raw(name) {
			p := fmt.Sprintf("hooks.%s[%d]", name, i)
			if strings.TrimSpace(h.Command) == "" {
				l.at(p, "a hook needs a command (a string, or {command: ..., timeout: 10s})")
			}
			if h.Timeout < 0 {
				l.at(p+".timeout", "timeout must be positive")
			}
		}
	}
}
