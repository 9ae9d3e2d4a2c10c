package version

import "errors"

// ErrInvalid is wrapped by every error for a string that is not a release
// version (Valid, Parse, Constraint.Check).
var ErrInvalid = errors.New("not a release version")
