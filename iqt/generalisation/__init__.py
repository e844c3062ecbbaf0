"""The generalisation benchmark: unseen anatomy (Colin27) and acquisitions the training simulator does not produce."""
