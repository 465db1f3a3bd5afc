//! Loading profile files: locating, templates, formats, includes, inheritance. (to be written)
