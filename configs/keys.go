package configs

import (
	"os"
	"strconv"
	"strings"
)

// Constructors for the common shapes of key. Each binds a key to one field
// of a kind's options *O, so that a kind lists a key in a line: field
// returns the field's address in the options Kind.New made.

// Value is a key that parse turns into a field of type T and format
// renders back; T's zero value means unset.
func Value[O any, T comparable](name, value, help string, field func(*O) *T, parse func(string) (T, error), format func(T) string) Key {
	return Key{Name: name, Value: value, Help: help,
		Set: func(o Options, v string) (err error) {
			*field(o.(*O)), err = parse(v)
			return err
		},
		Get: func(o Options) (string, bool) {
			var zero T
			x := *field(o.(*O))
			return format(x), x != zero
		},
	}
}

// Flag is a key that turns something on: name=1 (or true, yes, on).
func Flag[O any](name, help string, field func(*O) *bool) Key {
	return Value(name, "1", help, field, ParseBool, func(bool) string { return "1" })
}

// Text is a key kept as given; check, if not nil, refuses bad values.
func Text[O any](name, value, help string, field func(*O) *string, check func(string) error) Key {
	return Value(name, value, help, field, func(v string) (string, error) {
		if check != nil {
			return v, check(v)
		}
		return v, nil
	}, func(v string) string { return v })
}

// List is a key whose value is a comma-separated list of words, kept in
// order without empty ones; none given leaves it unset.
func List[O any](name, value, help string, field func(*O) *[]string) Key {
	return Key{Name: name, Value: value, Help: help, List: true,
		Set: func(o Options, v string) error {
			list := field(o.(*O))
			for _, w := range strings.Split(v, ",") {
				if w = strings.TrimSpace(w); w != "" {
					*list = append(*list, w)
				}
			}
			return nil
		},
		Get: func(o Options) (string, bool) {
			list := *field(o.(*O))
			return strings.Join(list, ","), len(list) > 0
		},
	}
}

// Present is k recording in *has that it was given, and rendered exactly
// then: for values whose zero is a value (a GRE key of 0).
func Present[O any](k Key, has func(*O) *bool) Key {
	set, get := k.Set, k.Get
	k.Set = func(o Options, v string) error {
		*has(o.(*O)) = true
		return set(o, v)
	}
	k.Get = func(o Options) (string, bool) {
		v, _ := get(o)
		return v, *has(o.(*O))
	}
	return k
}

// Mode is mode=OCTAL, the permissions of a socket file; 0 keeps the
// umask's.
func Mode[O any](help string, field func(*O) *os.FileMode) Key {
	return Value("mode", "OCTAL", help, field, ParseMode, formatMode)
}

// Owner and Group are owner=USER and group=GROUP: a number or a name from
// the system's databases, kept in an int that is -1 while unset (Kind.New
// sets it so).
func Owner[O any](help string, field func(*O) *int) Key {
	return id("owner", "USER", help, field, ParseOwner)
}

// Group is group=GROUP; see Owner.
func Group[O any](help string, field func(*O) *int) Key {
	return id("group", "GROUP", help, field, ParseGroup)
}

func id[O any](name, value, help string, field func(*O) *int, parse func(string) (uint32, error)) Key {
	return Key{Name: name, Value: value, Help: help,
		Set: func(o Options, v string) error {
			n, err := parse(v)
			*field(o.(*O)) = int(n)
			return err
		},
		Get: func(o Options) (string, bool) {
			n := *field(o.(*O))
			if n < 0 {
				return "", false
			}
			return Decimal(n), true
		},
	}
}

// IDs is a key whose value lists users or groups (parse is ParseUsers or
// ParseGroups: numbers or names separated by ';' or spaces), kept as ids
// and rendered back as numbers: allow_uid='alice;1001'.
func IDs[O any](name, value, help string, field func(*O) *[]uint32, parse func(string) ([]uint32, error)) Key {
	return Key{Name: name, Value: value, Help: help,
		Set: func(o Options, v string) error {
			ids, err := parse(v)
			*field(o.(*O)) = ids
			return err
		},
		Get: func(o Options) (string, bool) {
			ids := *field(o.(*O))
			s := make([]string, len(ids))
			for i, id := range ids {
				s[i] = strconv.FormatUint(uint64(id), 10)
			}
			return strings.Join(s, ";"), len(ids) > 0
		},
	}
}
