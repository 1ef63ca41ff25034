/*
 * mailaccess.h - umbrella header for plugins and programs built on
 * libmailaccess. Including this one header is enough for any plugin.
 */
#ifndef MAILACCESS_H
#define MAILACCESS_H

#include <mailaccess/arena.h>
#include <mailaccess/buf.h>
#include <mailaccess/log.h>
#include <mailaccess/util.h>
#include <mailaccess/config.h>
#include <mailaccess/plugin.h>
#include <mailaccess/core.h>
#include <mailaccess/conn.h>
#include <mailaccess/auth.h>
#include <mailaccess/store.h>
#include <mailaccess/kv.h>
#include <mailaccess/mime.h>

#endif
