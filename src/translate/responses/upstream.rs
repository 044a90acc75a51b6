//! A pivot request served by a Responses API backend (see [`super`]).
