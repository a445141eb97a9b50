package iam

// SetCheckPassword replaces the password check, for tests that observe how
// many run at once.
func (s *Service) SetCheckPassword(fn func(hash, password string) bool) { s.checkPassword = fn }
