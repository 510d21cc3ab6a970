package main

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
)

// The agent's "reasoning" is rule-based so the example runs offline: it pulls the arithmetic
// expression out of the question and evaluates it. What the prompt asks for decides how the
// answer is worded, so the reward depends on the prompt template, as it would with a model.

var expressionRE = regexp.MustCompile(`[-+*/().\d\s]*\d[-+*/().\d\s]*`)

// extractExpression finds the arithmetic in a question such as "What is (3 + 4) * 5?".
func extractExpression(question string) (string, error) {
	best := ""
	for _, candidate := range expressionRE.FindAllString(question, -1) {
		if candidate = strings.TrimSpace(candidate); len(candidate) > len(best) {
			best = candidate
		}
	}
	if best == "" {
		return "", fmt.Errorf("no arithmetic expression in %q", question)
	}
	return best, nil
}

// evaluate computes an expression of numbers, + - * /, unary minus and parentheses.
func evaluate(expression string) (float64, error) {
	p := &parser{text: strings.ReplaceAll(expression, " ", "")}
	value, err := p.sum()
	if err != nil {
		return 0, err
	}
	if p.pos != len(p.text) {
		return 0, fmt.Errorf("unexpected %q at offset %d of %q", p.text[p.pos:], p.pos, expression)
	}
	if math.IsInf(value, 0) || math.IsNaN(value) {
		return 0, fmt.Errorf("%q has no finite value (division by zero?)", expression)
	}
	return value, nil
}

type parser struct {
	text string
	pos  int
}

func (p *parser) peek() byte {
	if p.pos < len(p.text) {
		return p.text[p.pos]
	}
	return 0
}

func (p *parser) sum() (float64, error) {
	left, err := p.product()
	for err == nil && (p.peek() == '+' || p.peek() == '-') {
		op := p.text[p.pos]
		p.pos++
		var right float64
		if right, err = p.product(); op == '+' {
			left += right
		} else {
			left -= right
		}
	}
	return left, err
}

func (p *parser) product() (float64, error) {
	left, err := p.unary()
	for err == nil && (p.peek() == '*' || p.peek() == '/') {
		op := p.text[p.pos]
		p.pos++
		var right float64
		if right, err = p.unary(); op == '*' {
			left *= right
		} else {
			left /= right
		}
	}
	return left, err
}

func (p *parser) unary() (float64, error) {
	if p.peek() == '-' {
		p.pos++
		value, err := p.unary()
		return -value, err
	}
	if p.peek() == '(' {
		p.pos++
		value, err := p.sum()
		if err != nil {
			return 0, err
		}
		if p.peek() != ')' {
			return 0, fmt.Errorf("missing ')' at offset %d of %q", p.pos, p.text)
		}
		p.pos++
		return value, nil
	}
	start := p.pos
	for p.pos < len(p.text) && (p.text[p.pos] == '.' || (p.text[p.pos] >= '0' && p.text[p.pos] <= '9')) {
		p.pos++
	}
	if start == p.pos {
		return 0, fmt.Errorf("expected a number at offset %d of %q", start, p.text)
	}
	return strconv.ParseFloat(p.text[start:p.pos], 64)
}

// formatNumber prints integral values without a fractional part.
func formatNumber(value float64) string {
	if value == math.Trunc(value) && math.Abs(value) < 1<<53 {
		return strconv.FormatInt(int64(value), 10)
	}
	return strconv.FormatFloat(value, 'f', -1, 64)
}

// respond words the answer the way the prompt asks: just the number when the prompt says
// "only the number", a sentence otherwise.
func respond(prompt string, value float64) string {
	if strings.Contains(strings.ToLower(prompt), "only the number") {
		return formatNumber(value)
	}
	return fmt.Sprintf("The answer is %s.", formatNumber(value))
}

// grade is 1 for exactly the expected number, 0.5 when the number is there among other words,
// 0 otherwise.
func grade(output string, expected float64) float64 {
	want := formatNumber(expected)
	switch {
	case strings.TrimSpace(output) == want:
		return 1
	case regexp.MustCompile(`(^|[^\d.])` + regexp.QuoteMeta(want) + `($|[^\d])`).MatchString(output):
		return 0.5
	}
	return 0
}
