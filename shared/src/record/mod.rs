//! The versioned binary stream record format (see FORMAT.md beside this file).
