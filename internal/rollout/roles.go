package rollout

import (
	"errors"
	"fmt"
	"strings"

	"github.com/relctl/relctl/internal/event"
	"github.com/relctl/relctl/internal/fleet"
	"github.com/relctl/relctl/internal/plan"
)

// checkRoleActions refuses, before anything changes, a plan whose roles
// list an action this executor cannot run for their hosts: every action
// of the runners table, a version check only where the host has a version
// command, and no balancer action for a host the plan keeps out of the
// balancer.
func (e *Engine) checkRoleActions() error {
	for _, r := range e.plan.Roles {
		for _, a := range r.Actions {
			if _, ok := runners[a]; !ok {
				return fmt.Errorf("the plan lists action %q for role %s, which this relctl cannot run: rebuild the plan", a, r.Name)
			}
			if !r.Balancer && (a == plan.ActionDrain || a == plan.ActionWaitIdle || a == plan.ActionEnable || a == plan.ActionVerify) {
				return fmt.Errorf("the plan lists %s for role %s, which is not behind the balancer: rebuild the plan", a, r.Name)
			}
			if a == plan.ActionVerify && !e.cfg.Balancer.CanVerify() {
				return fmt.Errorf("the plan lists verify, but balancer %s cannot read a server's state back: rebuild the plan", e.cfg.Balancer.Kind())
			}
			for _, h := range r.Hosts {
				if a == plan.ActionVersion && e.inv.HostTemplate(e.host(h), fleet.CmdVersion) == nil {
					return errors.New("the plan lists a version check for " + h + ", but the inventory has no version command for it: rebuild the plan")
				}
			}
		}
	}
	return nil
}

// heldBack turns a run that did all its plan asked into "partially
// upgraded" when the plan held back a step the whole fleet needs (the
// post-migrate of a selection that leaves hosts on the old version): the
// fleet runs two versions and its point of no return is still ahead.
func (e *Engine) heldBack(outcome event.Outcome, err error) (event.Outcome, error) {
	held := e.cfg.Plan.HeldBack()
	if len(held) == 0 || e.cfg.Plan.Kind != plan.KindUpgrade {
		return outcome, err
	}
	msg := strings.Join(held, "; ")
	e.bus.Emit(event.Event{Type: event.Warning, Message: msg})
	return event.OutcomePartial, errors.New(msg)
}
