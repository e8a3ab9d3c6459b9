# model: declared by its part (see decoder/CMakeLists.txt).
