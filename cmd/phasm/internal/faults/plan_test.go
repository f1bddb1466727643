package faults

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestPlanIsSeededAndCoversEveryKind(t *testing.T) {
	a, err := Plan(42, 10, 3, Kinds())
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Plan(42, 10, 3, Kinds())
	if !slices.Equal(a, b) {
		t.Fatalf("one seed, two plans:\n%v\n%v", a, b)
	}
	c, _ := Plan(43, 10, 3, Kinds())
	if slices.Equal(a, c) {
		t.Fatalf("seeds 42 and 43 drew the same plan %v", a)
	}
	seen := map[Kind]bool{}
	for i, f := range a {
		seen[f.Kind] = true
		if f.N != i+1 {
			t.Errorf("fault %d numbered %d", i, f.N)
		}
		h := holds[f.Kind]
		if f.Hold < h[0] || f.Hold > h[1] {
			t.Errorf("%s: hold outside [%s, %s]", f, h[0], h[1])
		}
		targeted := f.Kind == KillNode || f.Kind == Partition || f.Kind == Pause
		if targeted != (f.Node >= 0 && f.Node < 3) || (!targeted && f.Node != -1) {
			t.Errorf("%s: node %d", f, f.Node)
		}
	}
	for _, k := range Kinds() {
		if !seen[k] {
			t.Errorf("a plan of 10 faults lacks %s: %v", k, a)
		}
	}
}

func TestPlanListsEveryProblem(t *testing.T) {
	_, err := Plan(1, 0, 2, []Kind{"nap"})
	if !errors.Is(err, ErrPlan) {
		t.Fatalf("err %v, want ErrPlan", err)
	}
	for _, want := range []string{"0 faults", "2 nodes", `"nap"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
}
