//! A Responses client served through the pivot (see [`super`]).
