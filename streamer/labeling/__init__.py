"""streamer label: label recorded loops in the browser (loops, session, suggestions, server)."""
