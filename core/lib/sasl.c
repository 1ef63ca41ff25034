/* sasl.c: to be written */
