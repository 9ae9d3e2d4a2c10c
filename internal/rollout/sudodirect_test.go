package rollout

import "testing"

// sudoReason: what sudo -n -l said, as the reason of a direct command's
// refusal (the sudoers line to add follows it in the message).
func TestSudoReason(t *testing.T) {
	for in, want := range map[string]string{
		"fail 1 sudo: a password is required ": "a password is required",
		"fail 1 ":                              "sudoers does not allow it",
		"fail 1":                               "sudoers does not allow it",
		"fail 2 ":                              "sudo -n -l exited 2",
		"fail 1 sudo: unknown user relctlx ":   "sudo: unknown user relctlx",
	} {
		if got := sudoReason(in); got != want {
			t.Errorf("sudoReason(%q) = %q, want %q", in, got, want)
		}
	}
}
