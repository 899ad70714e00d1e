package policy_test

import (
	"slices"
	"testing"

	"github.com/umlswitch/umlswitch/configs"
	"github.com/umlswitch/umlswitch/policy"
	_ "github.com/umlswitch/umlswitch/transports" // registers the kinds and the policy keys
)

// link= is a key of every port: down reaches the fabric's policy, the
// spec renders it back, and up (the default) is left out of the spec.
func TestLinkKey(t *testing.T) {
	p, err := configs.ParsePort("transport=daemon,path=/tmp/a.ctl,link=down")
	if err != nil {
		t.Fatal(err)
	}
	if !policy.Of(p).LinkDown || p.String() != "transport=daemon,path=/tmp/a.ctl,link=down" {
		t.Fatalf("%s: link is not down", p)
	}
	up, err := p.With([2]string{"link", "up"})
	if err != nil {
		t.Fatal(err)
	}
	if policy.Of(up).LinkDown || up.String() != "transport=daemon,path=/tmp/a.ctl" {
		t.Fatalf("link=up: %s, %+v", up, policy.Of(up))
	}
	if _, err := configs.ParsePort("transport=daemon,path=/tmp/a.ctl,link=off"); err == nil {
		t.Fatal("link=off taken")
	}
	if !slices.Contains(policy.Keys(), "link") {
		t.Fatalf("link does not change at run time: %v", policy.Keys())
	}
}
