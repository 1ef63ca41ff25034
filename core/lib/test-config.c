/* test-config */
int main(void) { return 77; }
