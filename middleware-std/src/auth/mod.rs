//! Authentication: Basic, Bearer, API key, JWT (feature `jwt`).
