package swarm

import (
	"context"
	"fmt"
	"sort"

	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"

	"github.com/slipway-dev/slipway/internal/driver/docker"
)

// Engine describes a Docker engine as `slipway targets` reports it.
type Engine struct {
	Host    string `json:"host"`
	Version string `json:"version"`
	API     string `json:"api"`
	// Swarm is the engine's swarm state (inactive, active, …); Role is
	// "manager", "worker" or "" outside a swarm.
	Swarm string `json:"swarm"`
	Role  string `json:"role,omitempty"`
	// Nodes are the swarm's nodes, listed only through a manager.
	Nodes []Node `json:"nodes,omitempty"`
}

// Node is one swarm node.
type Node struct {
	Hostname string            `json:"hostname"`
	Role     string            `json:"role"`
	State    string            `json:"state"`
	Addr     string            `json:"addr"`
	Labels   map[string]string `json:"labels,omitempty"`
}

// Inspect connects to the engine at host ("" for DOCKER_HOST) and describes it.
func Inspect(ctx context.Context, host string) (Engine, error) {
	var opts []docker.Option
	if host != "" {
		opts = append(opts, docker.WithHost(host))
	}
	dd, err := docker.New(ctx, opts...)
	if err != nil {
		return Engine{Host: host}, err
	}
	defer dd.Close()
	cli := dd.Client()
	e := Engine{Host: dd.Host()}
	v, err := cli.ServerVersion(ctx, client.ServerVersionOptions{})
	if err != nil {
		return e, fmt.Errorf("engine version: %w", err)
	}
	e.Version, e.API = v.Version, v.APIVersion
	info, err := cli.Info(ctx, client.InfoOptions{})
	if err != nil {
		return e, fmt.Errorf("engine info: %w", err)
	}
	sw := info.Info.Swarm
	e.Swarm = string(sw.LocalNodeState)
	if sw.LocalNodeState != swarm.LocalNodeStateActive {
		return e, nil
	}
	e.Role = "worker"
	if !sw.ControlAvailable {
		return e, nil
	}
	e.Role = "manager"
	nl, err := cli.NodeList(ctx, client.NodeListOptions{})
	if err != nil {
		return e, fmt.Errorf("listing nodes: %w", err)
	}
	for _, n := range nl.Items {
		e.Nodes = append(e.Nodes, Node{Hostname: n.Description.Hostname, Role: string(n.Spec.Role), State: string(n.Status.State),
			Addr: n.Status.Addr, Labels: n.Spec.Labels})
	}
	sort.Slice(e.Nodes, func(i, j int) bool { return e.Nodes[i].Hostname < e.Nodes[j].Hostname })
	return e, nil
}
