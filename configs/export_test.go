package configs

// SpecValues are the values a port's spec is built of, for tests outside
// the package that check what a spec can carry.
func SpecValues(p Port) []string {
	var vs []string
	for _, kv := range p.pairs() {
		vs = append(vs, kv[1])
	}
	return vs
}
