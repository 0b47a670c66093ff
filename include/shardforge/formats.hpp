// shardforge formats: on-disk file formats (safetensors, GGUF). Readers validate strictly and name the file and
// tensor in every error; writers produce header bytes from a plan so ranks can write data at final offsets.
// Depends on core and quant (ggml type sizes) only. One header per format; this one includes them all.
#pragma once
#include <shardforge/bitsandbytes.hpp>
#include <shardforge/encode.hpp>
#include <shardforge/gguf.hpp>
#include <shardforge/imatrix.hpp>
#include <shardforge/safetensors.hpp>
