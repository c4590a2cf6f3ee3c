"""The export stage: shared class surfaces, VTK/STL files, the ParaView scene and its render."""
