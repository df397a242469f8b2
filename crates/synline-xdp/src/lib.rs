//! AF_XDP data path (issue 6): not built yet.
