package image

import "time"

// Label keys: the OCI annotations Slipway fills, and its own, by which it
// finds the images it owns.
const (
	LabelRevision = "org.opencontainers.image.revision"
	LabelSource   = "org.opencontainers.image.source"
	LabelCreated  = "org.opencontainers.image.created"
	LabelProject  = "dev.slipway.project"
	LabelStore    = "dev.slipway.store"
	LabelApp      = "dev.slipway.app"
)

// LabelInfo is what the standard label set records.
type LabelInfo struct {
	Project, Store, App string
	// Revision is the commit SHA; Source the repository URL.
	Revision, Source string
	// Created should be Spec.Created, so the label agrees with the config.
	Created time.Time
}

// Labels returns the standard labels for an image; empty fields are left out.
func Labels(info LabelInfo) map[string]string {
	m := map[string]string{}
	set := func(k, v string) {
		if v != "" {
			m[k] = v
		}
	}
	set(LabelProject, info.Project)
	set(LabelStore, info.Store)
	set(LabelApp, info.App)
	set(LabelRevision, info.Revision)
	set(LabelSource, info.Source)
	if !info.Created.IsZero() {
		m[LabelCreated] = info.Created.UTC().Format(time.RFC3339)
	}
	return m
}
