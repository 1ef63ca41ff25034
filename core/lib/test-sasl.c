/* test-sasl */
int main(void) { return 77; }
