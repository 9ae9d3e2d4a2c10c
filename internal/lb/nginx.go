package lb

import "errors"

func newNginx(cfg Config, c Connector) (Balancer, error) {
	return nil, errors.New("balancer.kind: not implemented yet")
}
