package main

import "testing"

// TestStory runs the example program end to end.
func TestStory(t *testing.T) {
	if err := run(); err != nil {
		t.Fatal(err)
	}
}
