package main

import "testing"

func TestSolveAndGrade(t *testing.T) {
	cases := []struct {
		question string
		want     float64
	}{
		{"What is 6 * 7?", 42},
		{"Compute (3 + 4) * -2, please.", -14},
		{"What is 7 / 2?", 3.5},
		{"How much is 10 - 2 - 3?", 5},
		{"What is 2 + 3 * 4?", 14},
	}
	for _, c := range cases {
		expression, err := extractExpression(c.question)
		if err != nil {
			t.Fatalf("%q: %v", c.question, err)
		}
		got, err := evaluate(expression)
		if err != nil || got != c.want {
			t.Fatalf("%q -> %q = %v, %v; want %v", c.question, expression, got, err, c.want)
		}
	}
	for _, bad := range []string{"What is love?", "What is 1 / 0?", "What is (1 + 2?"} {
		expression, err := extractExpression(bad)
		if err == nil {
			_, err = evaluate(expression)
		}
		if err == nil {
			t.Fatalf("%q: no error", bad)
		}
	}
	if r := respond("Reply with only the number.", 42); r != "42" || grade(r, 42) != 1 {
		t.Fatalf("terse: %q graded %v", r, grade(r, 42))
	}
	if r := respond("Answer politely.", 3.5); r != "The answer is 3.5." || grade(r, 3.5) != 0.5 {
		t.Fatalf("verbose: %q graded %v", r, grade(r, 3.5))
	}
	if grade("The answer is 420.", 42) != 0 || grade("41", 42) != 0 {
		t.Fatal("a wrong number earned a reward")
	}
}
