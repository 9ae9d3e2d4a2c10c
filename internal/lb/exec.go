package lb

import "errors"

func newExec(cfg Config, c Connector) (Balancer, error) {
	return nil, errors.New("balancer.kind: not implemented yet")
}
