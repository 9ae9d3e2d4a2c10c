// Package proc starts, stops and reaps the long-running local processes of
// the demo and of the test harnesses (HAProxy, sshd, nginx, the demo app),
// and reads /proc to tell whether a pid is still a live process.
//
// It owns: starting a process in its own process group with a
// parent-death signal that fires only when this whole process ends;
// stopping by SIGTERM then SIGKILL of the group; pidfiles that a later
// process can Reap after this one was SIGKILLed; lifelines that let a
// daemon end itself when its owner is gone; and Alive, Descendants and
// Matching over /proc.
//
// It never finds a process by its name alone (no pkill): it signals only
// processes it started, a pidfile names with its start time, or a caller
// picked by pid. It is Linux-only, like relctl's demo, and is no part of
// relctl's product path: internal/rollout and the other product packages
// never import it.
package proc
