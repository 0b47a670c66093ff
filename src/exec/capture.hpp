// A step's exception as a value, so that every rank can agree on it (agree_on_error) before anyone throws.
#pragma once
#include <shardforge/core.hpp>

#include <exception>
#include <new>
#include <optional>

namespace shardforge::exec {

// Runs f; a core::Error it throws is returned as is, out of memory as Io, anything else as Internal.
template <class F>
std::optional<core::Error> capture(F&& f) {
    try {
        f();
    } catch (const core::Error& e) {
        return e;
    } catch (const std::bad_alloc&) {
        return core::Error(core::ErrorKind::Io, "", "", "out of memory");
    } catch (const std::exception& e) {
        return core::Error(core::ErrorKind::Internal, "", "", e.what());
    }
    return std::nullopt;
}

}  // namespace shardforge::exec
